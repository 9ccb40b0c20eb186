package native_test

import (
	"context"
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

// The box as the program sees it: who it is, what it holds, what it sees.
func TestBoxIdentity(t *testing.T) {
	b := newBackend(t)
	res, err := b.Run(context.Background(), sandbox.Spec{Command: []string{"/bin/sh", "-c",
		"id -u; id -g; hostname; pwd; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; ls /proc | grep -c '^[0-9]'; ls /sys 2>&1 | head -1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1000", "1000", "runbox", "/work", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
		"NoNewPrivs:\t1", "Seccomp:\t2"}
	got := strings.Split(res.Stdout, "\n")
	if res.Status != sandbox.StatusOK || len(got) < len(want)+2 {
		t.Fatalf("status %s\nstdout:\n%s\nstderr:\n%s", res.Status, res.Stdout, res.Stderr)
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("line %d: %q, want %q", i+1, got[i], w)
		}
	}
	// pid 1 (the init), sh, ls and grep at most: nothing of the host
	if n := got[len(want)]; n != "3" && n != "4" {
		t.Errorf("%s processes visible in /proc, want the box's own 3 or 4", n)
	}
	if !strings.Contains(got[len(want)+1], "No such file") {
		t.Errorf("/sys is visible: %q", got[len(want)+1])
	}
}
