package native_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newBackend(t testing.TB) *native.Backend {
	t.Helper()
	b, err := native.New(context.Background(), native.Config{})
	if err != nil {
		t.Skipf("native backend unavailable: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestSmoke(t *testing.T) {
	b := newBackend(t)
	for _, spec := range []sandbox.Spec{
		{Command: []string{"/bin/true"}},
		{Command: []string{"/bin/sh", "-c", "id; hostname; pwd; ls -la / /dev; cat /proc/self/status | grep -i -E 'cap|seccomp|nonewpriv'; ps -ef 2>&1 | head; ulimit -a"}},
		{Language: "python", Code: "import sys; print('hi', sys.version)"},
		{Language: "javascript", Code: "console.log('hi', process.version)"},
	} {
		res, err := b.Run(context.Background(), spec)
		if err != nil {
			t.Fatalf("%v: %v", spec.Command, err)
		}
		t.Logf("%s %v wall=%v cpu=%v peak=%d\nstdout:\n%s\nstderr:\n%s", res.Status, res.ExitCode, res.WallTime, res.CPUTime, res.PeakMemory, res.Stdout, res.Stderr)
	}
}

func BenchmarkTrue(b *testing.B) {
	be := newBackend(b)
	for b.Loop() {
		res, err := be.Run(context.Background(), sandbox.Spec{Command: []string{"/bin/true"}})
		if err != nil || res.Status != sandbox.StatusOK {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

func TestTimings(t *testing.T) {
	if testing.Short() {
		t.Skip("timing log only")
	}
	var buf strings.Builder
	b, err := native.New(context.Background(), native.Config{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Skip(err)
	}
	defer b.Close()
	for range 5 {
		if _, err := b.Run(context.Background(), sandbox.Spec{Command: []string{"/bin/true"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "timings") {
			t.Log(l)
		}
	}
}
