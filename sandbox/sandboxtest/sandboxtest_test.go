package sandboxtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/sandbox"
)

// These tests check the suite itself without a backend: its cases are well formed and
// their programs parse. They run no program.

// catalogue lists the rows of the hostile catalogue.
var catalogue = strings.Fields(`A1 A2 A3 A4 A5 A6 A7 B1 B2 B3 B4 B5 B6 C1 C2 C3 C4
	D1 D2 D3 D4 D5 D6 E1 E2 E3 E4 E5 E6 E7 E8 F1 F2 F3 F4 F5 G1 G2 G3 G4 G5 G6 G7
	H1 H2 I1 I2 I3 I4 I5 J1 J2 J3 J4 J5 J6 J7 J8`)

func testSuite(t *testing.T) *suite {
	return newSuite(t, nil)
}

func TestCasesCoverTheCatalogue(t *testing.T) {
	s := testSuite(t)
	covered := make(map[string]bool)
	names := make(map[string]bool)
	for _, c := range s.cases() {
		covered[c.id] = true
		n := c.id + "_" + c.name
		if names[n] {
			t.Errorf("two cases named %s", n)
		}
		names[n] = true
		if len(c.variantNames()) == 0 {
			t.Errorf("%s has no variant", n)
		}
		if c.multi == nil && c.check == nil {
			t.Errorf("%s checks nothing beyond the common checks", n)
		}
		if c.multi != nil && (c.code != nil || c.command != nil) {
			t.Errorf("%s has both a multi function and programs", n)
		}
	}
	for _, id := range catalogue {
		if covered[id] && excluded[id] != "" {
			t.Errorf("%s is both covered and excluded", id)
		}
		if !covered[id] && excluded[id] == "" {
			t.Errorf("row %s has no case and no reason to be left out", id)
		}
	}
	for id := range excluded {
		if !strings.Contains(strings.Join(catalogue, " "), id) {
			t.Errorf("excluded row %s is not in the catalogue", id)
		}
	}
}

func TestCaseSpecsAreValid(t *testing.T) {
	s := testSuite(t)
	for _, c := range s.cases() {
		if c.multi != nil {
			continue
		}
		for _, v := range c.variantNames() {
			spec := c.spec(v)
			if _, err := sandbox.Prepare(spec); err != nil {
				t.Errorf("%s_%s/%s: %v", c.id, c.name, v, err)
			}
			if strings.Contains(spec.Code, escaped) {
				t.Errorf("%s_%s/%s: the code spells %s in one piece; an error report quoting the line would print it",
					c.id, c.name, v, escaped)
			}
			if strings.Contains(spec.Code, "@@") {
				t.Errorf("%s_%s/%s: a placeholder was left in the code", c.id, c.name, v)
			}
		}
	}
}

// TestProgramsParse compiles every program with the host's interpreters, without
// running it. J1's programs are meant not to parse.
func TestProgramsParse(t *testing.T) {
	checkers := map[string]func(file string) *exec.Cmd{
		python: func(f string) *exec.Cmd {
			return exec.Command("/usr/bin/python3", "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", f)
		},
		javascript: func(f string) *exec.Cmd { return exec.Command("/usr/bin/node", "--check", f) },
		bash:       func(f string) *exec.Cmd { return exec.Command("/bin/bash", "-n", f) },
	}
	s := testSuite(t)
	// The programs of the cases of several runs.
	programs := map[string]map[string]string{
		"B5": b5Code, "E3_write": e3Write, "E3_look": e3Look, "I1": i1Code, "I3": sleeper,
		"G7": {python: pyPrelude + g7Prog},
	}
	for _, c := range s.cases() {
		if c.id != "J1" {
			programs[c.id+"_"+c.name] = c.code
		}
	}
	dir := t.TempDir()
	for caseName, code := range programs {
		for l, code := range code {
			name := caseName + "/" + l
			if _, err := os.Stat(checkers[l]("x").Path); err != nil {
				t.Logf("%s: no interpreter to check it with: %v", name, err)
				continue
			}
			f := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+map[string]string{python: ".py", javascript: ".js", bash: ".sh"}[l])
			if err := os.WriteFile(f, []byte(code), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := checkers[l](f).CombinedOutput(); err != nil {
				t.Errorf("%s does not parse: %v\n%s", name, err, out)
			}
		}
	}
}

func TestReasonName(t *testing.T) {
	for in, want := range map[string]string{
		"EROFS":                      "EROFS",
		"Read-only file system":      "EROFS",
		" Permission denied":         "EACCES",
		"No space left on device":    "ENOSPC",
		"Network is unreachable":     "ENETUNREACH",
		"Operation not permitted":    "EPERM",
		"No such device or address":  "ENXIO",
		"File too large":             "EFBIG",
		"ValueError":                 "ValueError",
		"must be superuser to mount": "must be superuser to mount",
	} {
		if got := reasonName(in); got != want {
			t.Errorf("reasonName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAttemptsAndFields(t *testing.T) {
	out := "open /x BLOCKED EROFS\nconnect 1.1.1.1:80 BLOCKED Network is unreachable\nwritten=123 error=No space left on device\nsize=5 rc=153\n"
	a := attempts(out)
	if a["open /x"] != "EROFS" || a["connect 1.1.1.1:80"] != "ENETUNREACH" || len(a) != 2 {
		t.Errorf("attempts = %v", a)
	}
	for key, want := range map[string]string{"written": "123", "error": "No space left on device", "size": "5", "rc": "153"} {
		if got, ok := field(out, key); !ok || got != want {
			t.Errorf("field(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
	if _, ok := field(out, "missing"); ok {
		t.Errorf("field found a key that is not there")
	}
}

func TestSections(t *testing.T) {
	sec := sections("before\n== one\na\nb\n== two\nc\n")
	if sec[""] != "before\n" || sec["one"] != "a\nb\n" || sec["two"] != "c\n" {
		t.Errorf("sections = %q", sec)
	}
}

func TestProcLimits(t *testing.T) {
	text := `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             4194304              4194304              bytes     
Max open files            100                  100                  files     
Max address space         unlimited            unlimited            bytes     
`
	l := procLimits(text)
	if l["Max open files"] != [2]string{"100", "100"} || l["Max file size"] != [2]string{"4194304", "4194304"} ||
		l["Max address space"] != [2]string{"unlimited", "unlimited"} {
		t.Errorf("procLimits = %v", l)
	}
	// And this process's own, which has the same layout.
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Skip(err)
	}
	if own := procLimits(string(b)); len(own) < 10 {
		t.Errorf("procLimits(/proc/self/limits) found %d limits: %v", len(own), own)
	}
}

func TestMountOf(t *testing.T) {
	info := `1 0 0:1 / / ro,nosuid,relatime - tmpfs root ro
2 1 0:2 / /work rw,nosuid,nodev - tmpfs work rw,size=65536k
3 1 0:3 / /tmp rw,nosuid,nodev - tmpfs tmp rw
4 3 0:4 / /tmp rw,nodev - tmpfs tmp2 rw
`
	for dir, want := range map[string][2]string{
		"/work":     {"/work", "rw,nosuid,nodev"},
		"/work/sub": {"/work", "rw,nosuid,nodev"},
		"/tmp":      {"/tmp", "rw,nodev"}, // the later mount hides the earlier
		"/dev/shm":  {"/", "ro,nosuid,relatime"},
		"/workshop": {"/", "ro,nosuid,relatime"},
	} {
		mp, opts := mountOf(info, dir)
		if mp != want[0] || opts != want[1] {
			t.Errorf("mountOf(%q) = %q, %q; want %q, %q", dir, mp, opts, want[0], want[1])
		}
	}
}

func TestMounts(t *testing.T) {
	m, err := readMounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatal("no mounts read")
	}
	after := map[string]int{"/ /var/lib/docker/overlay2/x/merged overlay overlay": 1, "/ /srv/box tmpfs tmpfs": 1}
	for k, n := range m {
		after[k] = n
	}
	if got := addedMounts(m, after); len(got) != 1 || got[0] != "/ /srv/box tmpfs tmpfs" {
		t.Errorf("addedMounts = %q, want only the mount outside the engines' directories", got)
	}
}
