package sandbox_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/sandbox"
)

func TestPrepareRejects(t *testing.T) {
	file := func(name string) []sandbox.File { return []sandbox.File{{Name: name, Content: []byte("x")}} }
	cmd := []string{"/bin/true"}
	for _, tc := range []struct {
		name string
		spec sandbox.Spec
		want string
	}{
		{"nothing", sandbox.Spec{}, "neither command nor language"},
		{"both", sandbox.Spec{Command: cmd, Language: "python", Code: "1"}, "not both"},
		{"unknown language", sandbox.Spec{Language: "cobol", Code: "x"}, `unknown language "cobol"`},
		{"no code", sandbox.Spec{Language: "python"}, "without code"},
		{"NUL in code", sandbox.Spec{Language: "python", Code: "print(1)\x00"}, "NUL byte in code"},
		{"dotdot", sandbox.Spec{Command: cmd, Files: file("../../x")}, "leaves the work directory"},
		{"inner dotdot", sandbox.Spec{Command: cmd, Files: file("a/../../x")}, "leaves the work directory"},
		{"absolute", sandbox.Spec{Command: cmd, Files: file("/etc/passwd")}, "absolute"},
		{"NUL in name", sandbox.Spec{Command: cmd, Files: file("a\x00b")}, "NUL byte in input file name"},
		{"empty name", sandbox.Spec{Command: cmd, Files: file("")}, "empty input file name"},
		{"unclean", sandbox.Spec{Command: cmd, Files: file("a//b")}, "not clean"},
		{"dot", sandbox.Spec{Command: cmd, Files: file("./a")}, "not clean"},
		{"duplicate", sandbox.Spec{Command: cmd, Files: append(file("a"), file("a")...)}, "given twice"},
		{"file and dir", sandbox.Spec{Command: cmd, Files: append(file("a"), file("a/b")...)}, "also a directory"},
		{"code file clash", sandbox.Spec{Language: "python", Code: "1", Files: file("main.py")}, "also an input file"},
		{"missing code file", sandbox.Spec{Language: "python", CodeFile: "x.py"}, "not among the input files"},
		{"NUL in arg", sandbox.Spec{Command: []string{"/bin/echo", "a\x00"}}, "NUL byte"},
		{"env name", sandbox.Spec{Command: cmd, Env: map[string]string{"A=B": "x"}}, "environment variable name"},
		{"env NUL", sandbox.Spec{Command: cmd, Env: map[string]string{"A": "x\x00"}}, "NUL byte"},
		{"run id", sandbox.Spec{Command: cmd, RunID: "../x"}, "run id"},
		{"negative memory", sandbox.Spec{Command: cmd, Limits: sandbox.Limits{Memory: -1}}, "memory"},
		{"tiny memory", sandbox.Spec{Command: cmd, Limits: sandbox.Limits{Memory: 1 << 20}}, "memory"},
		{"long wall", sandbox.Spec{Command: cmd, Limits: sandbox.Limits{WallTime: 2 * time.Hour}}, "wall time"},
		{"processes", sandbox.Spec{Command: cmd, Limits: sandbox.Limits{Processes: -3}}, "processes"},
		{"network", sandbox.Spec{Command: cmd, Limits: sandbox.Limits{Network: "host"}}, `network "host"`},
		{"stdin", sandbox.Spec{Command: cmd, Stdin: make([]byte, sandbox.MaxStdin+1)}, "stdin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := sandbox.Prepare(tc.spec)
			if !errors.Is(err, sandbox.ErrInvalidSpec) || p != nil {
				t.Fatalf("Prepare = %v, %v; want ErrInvalidSpec", p, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestPrepareDefaults(t *testing.T) {
	p, err := sandbox.Prepare(sandbox.Spec{Command: []string{"echo"}, Args: []string{"a"}, Env: map[string]string{"X": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	l := p.Limits
	if l.WallTime != sandbox.DefaultWallTime || l.CPUTime != l.WallTime || l.Memory != sandbox.DefaultMemory ||
		l.Processes != sandbox.DefaultProcesses || l.Network != api.NetworkNone || l.Stdout != sandbox.DefaultOutput {
		t.Fatalf("defaults not filled in: %+v", l)
	}
	if strings.Join(p.Command, " ") != "echo a" || p.RunID == "" {
		t.Fatalf("command %q, run id %q", p.Command, p.RunID)
	}
	env := strings.Join(p.Env, "\n")
	for _, want := range []string{"X=1", "HOME=/work", "PATH=/usr/local/bin:/usr/bin:/bin"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, p.Env)
		}
	}
}

// The JSON form of a result stays valid for any bytes, and round-trips exactly.
func TestResultJSONRoundTrip(t *testing.T) {
	code := 3
	r := sandbox.Result{RunID: "x", Status: sandbox.StatusRuntimeError, ExitCode: &code,
		Stdout: "ok\n", Stderr: "bad \xff\x00 bytes", WallTime: 1500 * time.Microsecond,
		Limits: sandbox.WithDefaults(sandbox.Limits{})}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !strings.Contains(string(b), `"stderr_encoding":"base64"`) || !strings.Contains(string(b), `"wall_time_ms":1.5`) {
		t.Fatalf("JSON: %s", b)
	}
	var back sandbox.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Stdout != r.Stdout || back.Stderr != r.Stderr || back.WallTime != r.WallTime ||
		*back.ExitCode != 3 || back.Limits != r.Limits {
		t.Fatalf("round trip: %+v\nwant %+v", back, r)
	}
}

// A limit runbox enforced decides the verdict over the kernel's OOM kill that may
// come while the run is being stopped, then OOM over how the program ended.
func TestFinishPrecedence(t *testing.T) {
	p, err := sandbox.Prepare(sandbox.Spec{Command: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f      sandbox.Facts
		status sandbox.Status
		limit  string
	}{
		{sandbox.Facts{Signal: 9, Limit: api.LimitStderr, OOMKilled: true}, sandbox.StatusOutputLimit, api.LimitStderr},
		{sandbox.Facts{Signal: 9, Limit: api.LimitWall, OOMKilled: true}, sandbox.StatusTimeout, api.LimitWall},
		{sandbox.Facts{Exited: true, OOMKilled: true}, sandbox.StatusOOM, api.LimitMemory},
		{sandbox.Facts{Signal: 11}, sandbox.StatusSignaled, ""},
		{sandbox.Facts{Signal: 24}, sandbox.StatusTimeout, api.LimitCPU},
		{sandbox.Facts{Exited: true, ExitCode: 3}, sandbox.StatusRuntimeError, ""},
		{sandbox.Facts{Exited: true}, sandbox.StatusOK, ""},
	} {
		r := p.NewResult("test")
		p.Finish(r, tc.f)
		if r.Status != tc.status || r.Limit != tc.limit || (r.ExitCode != nil) == (r.Signal != "") {
			t.Errorf("Finish(%+v): status %s limit %q exit %v signal %q; want %s %q and one of exit code or signal",
				tc.f, r.Status, r.Limit, r.ExitCode, r.Signal, tc.status, tc.limit)
		}
	}
}
