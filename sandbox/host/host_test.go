package host_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/host"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestHostRuns(t *testing.T) {
	b := host.New()
	for _, tc := range []struct {
		name  string
		spec  sandbox.Spec
		check func(*testing.T, *sandbox.Result)
	}{
		{"ok with files and stdin", sandbox.Spec{Language: "python",
			Code:  "import sys, helper\nprint(helper.X, sys.stdin.read(), open('data/in.txt').read())",
			Files: []sandbox.File{{Name: "helper.py", Content: []byte("X = 42\n")}, {Name: "data/in.txt", Content: []byte("file")}},
			Stdin: []byte("stdin")},
			func(t *testing.T, r *sandbox.Result) {
				if r.Status != sandbox.StatusOK || r.Stdout != "42 stdin file\n" {
					t.Errorf("status %s stdout %q stderr %q", r.Status, r.Stdout, r.Stderr)
				}
			}},
		{"syntax error names the file and line", sandbox.Spec{Language: "python", Code: "x = 1\nprint(\"a\"\n"},
			func(t *testing.T, r *sandbox.Result) {
				if d := r.Diagnostic; r.Status != sandbox.StatusSyntaxError || d == nil || d.File != "main.py" || d.Line != 2 {
					t.Errorf("status %s diagnostic %+v", r.Status, d)
				}
			}},
		{"timeout", sandbox.Spec{Language: "bash", Code: "sleep 30", Limits: sandbox.Limits{WallTime: 300 * time.Millisecond}},
			func(t *testing.T, r *sandbox.Result) {
				if r.Status != sandbox.StatusTimeout || r.Limit != "wall" || r.WallTime > 5*time.Second {
					t.Errorf("status %s limit %q wall %v", r.Status, r.Limit, r.WallTime)
				}
			}},
		{"output limit", sandbox.Spec{Language: "bash", Code: "yes", Limits: sandbox.Limits{Stdout: 4096}},
			func(t *testing.T, r *sandbox.Result) {
				if r.Status != sandbox.StatusOutputLimit || r.Limit != "stdout" || len(r.Stdout) != 4096 || !r.StdoutTruncated {
					t.Errorf("status %s limit %q %d bytes truncated=%v", r.Status, r.Limit, len(r.Stdout), r.StdoutTruncated)
				}
			}},
		{"memory", sandbox.Spec{Language: "python", Code: "b = bytearray(400 << 20)\nprint(len(b))", Limits: sandbox.Limits{Memory: 64 << 20}},
			func(t *testing.T, r *sandbox.Result) {
				if r.Status != sandbox.StatusOOM && !(r.Status == sandbox.StatusRuntimeError && r.Diagnostic != nil && r.Diagnostic.Type == "MemoryError") {
					t.Errorf("status %s diagnostic %+v: want oom or a MemoryError", r.Status, r.Diagnostic)
				}
			}},
		{"combined", sandbox.Spec{Language: "bash", Code: "echo out; echo err >&2", Combined: true},
			func(t *testing.T, r *sandbox.Result) {
				if r.Status != sandbox.StatusOK || !strings.Contains(r.Stdout, "out\n") || !strings.Contains(r.Stdout, "err\n") ||
					r.Stderr != "" || r.StderrBytes != 0 || r.StdoutBytes != 8 {
					t.Errorf("status %s stdout %q (%d bytes) stderr %q (%d bytes)", r.Status, r.Stdout, r.StdoutBytes, r.Stderr, r.StderrBytes)
				}
			}},
		{"clean environment", sandbox.Spec{Command: []string{"/usr/bin/env"}},
			func(t *testing.T, r *sandbox.Result) {
				if r.Status != sandbox.StatusOK || strings.Contains(r.Stdout, "RUNBOX_TESTENV") || !strings.Contains(r.Stdout, "PYTHONUNBUFFERED=1") {
					t.Errorf("status %s env:\n%s", r.Status, r.Stdout)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := b.Run(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if r.Backend != "host" {
				t.Errorf("backend %q", r.Backend)
			}
			tc.check(t, r)
		})
	}
}
