package sandboxtest

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/sandbox"
)

// denied are the reasons an access outside the box may fail with: absent or denied.
var denied = []string{"ENOENT", "EACCES", "EPERM"}

// readOnly are the reasons a write to the read-only system may fail with.
var readOnly = []string{"EROFS", "EACCES", "EPERM", "ETXTBSY"}

func (s *suite) filesystemCases() []*hostileCase {
	name := "sbt-" + s.marker
	return []*hostileCase{
		{
			id: "E1", name: "fill_the_disk",
			code: progs(`for d in ["/work", "/tmp"]:
    written, err = 0, "none"
    with open(d + "/fill", "wb", buffering=0) as f:
        chunk = b"\x01" * (1 << 20)
        try:
            while written < (64 << 20):
                written += f.write(chunk)
        except OSError as e:
            err = errno.errorcode.get(e.errno, str(e.errno))
    print("dir=%s written=%d error=%s" % (d, written, err), flush=True)
`, `for (const d of ['/work', '/tmp']) {
  const fd = fs.openSync(d + '/fill', 'w');
  const chunk = Buffer.alloc(1 << 20, 1);
  let written = 0, err = 'none';
  try {
    while (written < 64 << 20) written += fs.writeSync(fd, chunk);
  } catch (e) {
    err = e.code;
  }
  fs.closeSync(fd);
  console.log('dir=' + d + ' written=' + written + ' error=' + err);
}
`, `for d in /work /tmp; do
  err=$(head -c 67108864 /dev/zero 2>&1 >"$d/fill")
  echo "dir=$d written=$(stat -c %s "$d/fill") error=${err##*: }"
done
`),
			limits: sandbox.Limits{TmpSize: 8 * mib},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				lines := strings.Split(strings.TrimSpace(o.Stdout), "\n")
				if len(lines) != 2 {
					t.Fatalf("stdout %q, want a line for /work and one for /tmp", o.Stdout)
				}
				for _, l := range lines {
					d, _ := field(l, "dir")
					// The code file takes a little of the work directory.
					wantFull(t, l, d, o.Limits.TmpSize, "ENOSPC")
				}
			},
		},
		{
			id: "E2", name: "inode_cap",
			code: progs(`n, err = 0, "none"
try:
    while n < 100000:
        open("/work/f%d" % n, "w").close()
        n += 1
except OSError as e:
    err = errno.errorcode.get(e.errno, str(e.errno))
print("files=%d error=%s" % (n, err))
`, `let n = 0, err = 'none';
try {
  while (n < 100000) {
    fs.closeSync(fs.openSync('/work/f' + n, 'w'));
    n++;
  }
} catch (e) {
  err = e.code;
}
console.log('files=' + n + ' error=' + err);
`, `n=0
while [ $n -lt 100000 ]; do
  { : >/work/f$n; } 2>/dev/null || break
  n=$((n+1))
done
err=$( { : >/work/f$n; } 2>&1 )
echo "files=$n error=${err##*: }"
`),
			limits: sandbox.Limits{TmpInodes: 1000},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				n := intField(t, o.Stdout, "files")
				if n > int64(o.Limits.TmpInodes) || n < int64(o.Limits.TmpInodes)/2 {
					t.Errorf("%d files created, want the inode cap of %d to stop it near there", n, o.Limits.TmpInodes)
				}
				if e, _ := field(o.Stdout, "error"); reasonName(e) != "ENOSPC" {
					t.Errorf("creating files stopped with %q, want ENOSPC", e)
				}
			},
		},
		{
			id: "E3", name: "no_state_between_runs", variants: langs,
			host: func(t *testing.T) func(t *testing.T) {
				return absent("/tmp/"+name, "/var/tmp/"+name, "/dev/shm/"+name)
			},
			multi: func(t *testing.T, v string) { s.noStateBetweenRuns(t, v, name) },
		},
		{
			id: "E4", name: "read_only_system",
			code: expand(progs(`attempt("create /", lambda: open("/@@NAME@@", "w"))
attempt("create /etc", lambda: open("/etc/@@NAME@@", "w"))
attempt("create /usr", lambda: open("/usr/@@NAME@@", "w"))
attempt("create /usr/bin", lambda: open("/usr/bin/@@NAME@@", "w"))
attempt("append /etc/passwd", lambda: open("/etc/passwd", "a"))
attempt("chmod /etc/passwd", os.chmod, "/etc/passwd", 0o777)
attempt("write /bin/sh", lambda: open("/bin/sh", "r+b"))
`, `attempt('create /', () => fs.writeFileSync('/@@NAME@@', 'x'));
attempt('create /etc', () => fs.writeFileSync('/etc/@@NAME@@', 'x'));
attempt('create /usr', () => fs.writeFileSync('/usr/@@NAME@@', 'x'));
attempt('create /usr/bin', () => fs.writeFileSync('/usr/bin/@@NAME@@', 'x'));
attempt('append /etc/passwd', () => fs.closeSync(fs.openSync('/etc/passwd', 'a')));
attempt('chmod /etc/passwd', () => fs.chmodSync('/etc/passwd', 0o777));
attempt('write /bin/sh', () => fs.closeSync(fs.openSync('/bin/sh', 'r+')));
`, `attempt "create /" ': >/@@NAME@@'
attempt "create /etc" ': >/etc/@@NAME@@'
attempt "create /usr" ': >/usr/@@NAME@@'
attempt "create /usr/bin" ': >/usr/bin/@@NAME@@'
attempt "append /etc/passwd" ': >>/etc/passwd'
attempt "chmod /etc/passwd" 'chmod 777 /etc/passwd'
attempt "write /bin/sh" ': 1<>/bin/sh'
`), "NAME", name),
			host: func(t *testing.T) func(t *testing.T) {
				return both(unchanged(t, "/etc/passwd", "/bin/sh"),
					absent("/"+name, "/etc/"+name, "/usr/"+name, "/usr/bin/"+name))
			},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantBlocked(t, o, []string{"create /", "create /etc", "create /usr", "create /usr/bin",
					"append /etc/passwd", "chmod /etc/passwd", "write /bin/sh"}, readOnly...)
			},
		},
		{
			id: "E5", name: "host_secrets_absent",
			code: expand(progs(`def read(p):
    if os.path.isdir(p):
        os.listdir(p)
    else:
        with open(p, "rb") as f:
            f.read(1)


for k, v in sorted(os.environ.items()):
    print("env %s=%s" % (k, v))
for p in @@PATHS_PY@@:
    attempt("read " + p, read, p)
`, `for (const [k, v] of Object.entries(process.env)) console.log('env ' + k + '=' + v);
for (const p of @@PATHS_JS@@) {
  attempt('read ' + p, () => {
    if (fs.statSync(p).isDirectory()) {
      fs.readdirSync(p);
    } else {
      const fd = fs.openSync(p, 'r');
      fs.readSync(fd, Buffer.alloc(1), 0, 1, 0);
      fs.closeSync(fd);
    }
  });
}
`, `env | sed 's/^/env /'
for p in @@PATHS_SH@@; do
  attempt "read $p" 'if [ -d "$p" ]; then ls "$p"; else head -c1 "$p"; fi'
done
`), "PATHS_PY", pyList(s.secretPaths()), "PATHS_JS", pyList(s.secretPaths()), "PATHS_SH", shWords(s.secretPaths())),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				var whats []string
				for _, p := range s.secretPaths() {
					whats = append(whats, "read "+p)
				}
				wantBlocked(t, o, whats, denied...)
				if strings.Contains(o.Stdout, secretEnv) {
					t.Errorf("the box's environment has %s, which is the test process's", secretEnv)
				}
			},
		},
		{
			id: "E6", name: "host_never_follows_links",
			// The program plants links to host files, FIFOs and devices where the
			// backend reads, writes and cleans up; the host files must not change.
			// The victim is a file of the test's, named by its host path.
			code: progs(`import stat
victim = os.environ["SBT_VICTIM"]
me = os.path.abspath(__file__)
for src, dst in [("/etc/shadow", "/work/shadow"), ("/etc", "/work/etc"), (victim, "/work/victim"),
                 (os.path.dirname(victim), "/work/victimdir"), (victim, "/tmp/victim"), (victim, "/work/.cache")]:
    os.symlink(src, dst)
os.remove(me)
os.symlink(victim, me)
os.mkfifo("/work/fifo")
os.mkfifo("/tmp/fifo")
try:
    os.link("/etc/passwd", "/work/passwd")
except OSError:
    pass
attempt("mknod /work/null", os.mknod, "/work/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
print("planted", flush=True)
`, `const path = require('path');
const { execFileSync } = require('child_process');
const victim = process.env.SBT_VICTIM;
for (const [src, dst] of [['/etc/shadow', '/work/shadow'], ['/etc', '/work/etc'], [victim, '/work/victim'],
  [path.dirname(victim), '/work/victimdir'], [victim, '/tmp/victim'], [victim, '/work/.cache']]) {
  fs.symlinkSync(src, dst);
}
fs.unlinkSync(__filename);
fs.symlinkSync(victim, __filename);
execFileSync('/usr/bin/mkfifo', ['/work/fifo', '/tmp/fifo']);
try {
  fs.linkSync('/etc/passwd', '/work/passwd');
} catch (e) {}
attempt('mknod /work/null', () => execFileSync('/usr/bin/mknod', ['/work/null', 'c', '1', '3'], { stdio: 'ignore' }));
console.log('planted');
`, `ln -s /etc/shadow /work/shadow
ln -s /etc /work/etc
ln -s "$SBT_VICTIM" /work/victim
ln -s "$(dirname "$SBT_VICTIM")" /work/victimdir
ln -s "$SBT_VICTIM" /tmp/victim
ln -s "$SBT_VICTIM" /work/.cache
rm -f /work/main.sh
ln -s "$SBT_VICTIM" /work/main.sh
mkfifo /work/fifo /tmp/fifo
ln /etc/passwd /work/passwd 2>/dev/null
attempt "mknod /work/null" 'mknod /work/null c 1 3'
echo planted
`),
			env: map[string]string{"SBT_VICTIM": s.victim},
			host: func(t *testing.T) func(t *testing.T) {
				return unchanged(t, filepath.Dir(s.victim), s.victim, "/etc/passwd", "/etc/shadow", s.exe)
			},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantStdoutLine(t, o, "planted")
				wantBlocked(t, o, []string{"mknod /work/null"})
			},
		},
		{
			id: "E7", name: "bounded_tree",
			// Deep nesting, many links to one file and a sparse 1 TiB file, left for
			// the backend's cleanup.
			code: progs(`d = "/work"
for _ in range(1000):  # os.makedirs recurses once per level, past Python's limit
    d += "/d"
    os.mkdir(d)
print("depth=1000", flush=True)
with open("/work/big", "wb") as f:
    f.write(b"\x01" * (1 << 20))
for i in range(500):
    os.link("/work/big", "/work/link%d" % i)
print("links=500", flush=True)
open("/work/sparse", "wb").close()
attempt("sparse 1 TiB", os.truncate, "/work/sparse", 1 << 40)
`, `fs.mkdirSync('/work/' + 'd/'.repeat(1000), { recursive: true });
console.log('depth=1000');
fs.writeFileSync('/work/big', Buffer.alloc(1 << 20, 1));
for (let i = 0; i < 500; i++) fs.linkSync('/work/big', '/work/link' + i);
console.log('links=500');
fs.writeFileSync('/work/sparse', '');
attempt('sparse 1 TiB', () => fs.truncateSync('/work/sparse', 2 ** 40));
`, `mkdir -p "/work/$(printf 'd/%.0s' {1..1000})"
echo depth=1000
head -c 1048576 /dev/zero >/work/big
for i in {1..500}; do ln /work/big /work/link$i; done
echo links=500
truncate -s 1T /work/sparse
echo "sparse_rc=$?"
`),
			limits: sandbox.Limits{FileSize: 64 * mib},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantStdoutLine(t, o, "depth=1000")
				wantStdoutLine(t, o, "links=500")
				if o.variant == bash {
					// truncate dies of SIGXFSZ: 128+25.
					if rc := intField(t, o.Stdout, "sparse_rc"); rc != 153 {
						t.Errorf("truncate to 1 TiB exited %d, want 153 (SIGXFSZ of the file size limit)", rc)
					}
				} else {
					wantBlocked(t, o, []string{"sparse 1 TiB"}, "EFBIG")
				}
			},
		},
		{
			id: "E8", name: "bad_input_file_names",
			variants: []string{"dotdot", "absolute", "nul", "file_and_directory", "empty", "dot", "duplicate", "code_file_twice"},
			multi: func(t *testing.T, v string) {
				f := func(name string) sandbox.File { return sandbox.File{Name: name, Content: []byte("x")} }
				spec := sandbox.Spec{Command: []string{"/bin/true"}}
				switch v {
				case "dotdot":
					spec.Files = []sandbox.File{f("../../x")}
				case "absolute":
					spec.Files = []sandbox.File{f("/abs")}
				case "nul":
					spec.Files = []sandbox.File{f("a\x00b")}
				case "file_and_directory":
					spec.Files = []sandbox.File{f("a"), f("a/b")}
				case "empty":
					spec.Files = []sandbox.File{f("")}
				case "dot":
					spec.Files = []sandbox.File{f("./x")}
				case "duplicate":
					spec.Files = []sandbox.File{f("x"), f("x")}
				case "code_file_twice":
					spec = sandbox.Spec{Language: python, Code: "print(1)\n", Files: []sandbox.File{f("main.py")}}
				}
				s.checkInvalid(t, spec)
			},
		},
	}
}

// secretPaths are what E5 tries to read: secrets of the host and the service's own
// files.
func (s *suite) secretPaths() []string {
	return []string{"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root", "/proc/1/environ",
		"/var/run/docker.sock", "/run/docker.sock", s.exe, filepath.Dir(s.exe), s.wd}
}

// e3Write writes a file named @@NAME@@ in every writable place; e3Look lists them.
var (
	e3Write = progs(`for d in ["/tmp", "/var/tmp", "/dev/shm", os.environ["HOME"]]:
    try:
        with open(os.path.join(d, "@@NAME@@"), "w") as f:
            f.write("x")
        print("wrote " + d)
    except OSError as e:
        print("could not write %s: %s" % (d, e))
`, `for (const d of ['/tmp', '/var/tmp', '/dev/shm', process.env.HOME]) {
  try {
    fs.writeFileSync(d + '/@@NAME@@', 'x');
    console.log('wrote ' + d);
  } catch (e) {
    console.log('could not write ' + d + ': ' + e.code);
  }
}
`, `for d in /tmp /var/tmp /dev/shm "$HOME"; do
  if echo x 2>/dev/null >"$d/@@NAME@@"; then echo "wrote $d"; else echo "could not write $d"; fi
done
`)
	e3Look = progs(`for d in ["/tmp", "/var/tmp", "/dev/shm", os.environ["HOME"]]:
    try:
        print("list %s: %s" % (d, " ".join(sorted(os.listdir(d)))))
    except OSError as e:
        print("list %s: %s" % (d, e))
`, `for (const d of ['/tmp', '/var/tmp', '/dev/shm', process.env.HOME]) {
  try {
    console.log('list ' + d + ': ' + fs.readdirSync(d).sort().join(' '));
  } catch (e) {
    console.log('list ' + d + ': ' + e.code);
  }
}
`, `for d in /tmp /var/tmp /dev/shm "$HOME"; do
  echo "list $d: $(ls -A "$d" 2>&1 | tr '\n' ' ')"
done
`)
)

// noStateBetweenRuns (E3) writes a file in each writable place of one box, and looks
// for them from the next.
func (s *suite) noStateBetweenRuns(t *testing.T, v, name string) {
	write, look := expand(e3Write, "NAME", name), e3Look
	w := s.run(t, sandbox.Spec{Language: v, Code: write[v], Limits: sandbox.Limits{WallTime: defaultWall}})
	wantExit(t, w, sandbox.StatusOK, 0)
	for _, d := range []string{"/tmp", "/dev/shm", sandbox.WorkDir} {
		wantStdoutLine(t, w, "wrote "+d)
	}
	l := s.run(t, sandbox.Spec{Language: v, Code: look[v], Limits: sandbox.Limits{WallTime: defaultWall}})
	wantExit(t, l, sandbox.StatusOK, 0)
	if strings.Contains(l.Stdout, name) {
		t.Errorf("the next run saw what the previous one wrote:\n%s", linesWith(l.Stdout, name))
	}
}

func wantStdoutLine(t *testing.T, o *outcome, line string) {
	t.Helper()
	for _, l := range strings.Split(o.Stdout, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("stdout lacks the line %q:\n%s", line, clip(o.Stdout))
}

// pyList writes strs as a Python (and JavaScript) list literal.
func pyList(strs []string) string {
	q := make([]string, len(strs))
	for i, s := range strs {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// shWords writes strs as single-quoted shell words.
func shWords(strs []string) string {
	q := make([]string, len(strs))
	for i, s := range strs {
		q[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
