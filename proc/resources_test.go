package proc_test

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/runboxhq/runbox/proc"
)

func TestResourcesMemoryOOM(t *testing.T) {
	t.Parallel()
	c := helper(t, "alloc", "256")
	c.Resources = &proc.Resources{Memory: 64 << 20}
	res := run(t, c)
	if res.Usage == nil {
		t.Fatal("no Usage with Resources set")
	}
	if res.Signal != syscall.SIGKILL || res.Usage.OOMKills < 1 {
		t.Fatalf("status %s signal %v oom kills %d; want SIGKILL by the OOM killer\nstdout: %s", res.Status, res.Signal, res.Usage.OOMKills, res.Stdout)
	}
	if res.Usage.MemoryPeak < 32<<20 || res.Usage.MemoryPeak > 65<<20 {
		t.Errorf("peak memory %d, want near the 64 MiB limit", res.Usage.MemoryPeak)
	}
}

func TestResourcesMemoryUnderLimit(t *testing.T) {
	t.Parallel()
	c := helper(t, "alloc", "16")
	c.Resources = &proc.Resources{Memory: 128 << 20}
	res := run(t, c)
	if !res.Success() || res.Usage.OOMKills != 0 {
		t.Fatalf("status %s oom kills %d, want ok", res.Status, res.Usage.OOMKills)
	}
	if res.Usage.MemoryPeak < 16<<20 || res.Usage.CPU <= 0 {
		t.Errorf("usage %+v: want a peak of at least 16 MiB and some CPU time", *res.Usage)
	}
}

// The pids limit counts the helper's own threads too, so ask for more children than fit.
func TestResourcesPids(t *testing.T) {
	t.Parallel()
	c := helper(t, "children", "100")
	c.Resources = &proc.Resources{Pids: 32}
	res := run(t, c)
	out := string(res.Stdout)
	if !res.Success() || !strings.Contains(out, "resource temporarily unavailable") || strings.HasPrefix(out, "started 100 ") {
		t.Fatalf("status %s, stdout %q: want fewer than 100 started and EAGAIN", res.Status, out)
	}
}

func TestResourcesNeedCgroup(t *testing.T) {
	t.Parallel()
	c := helper(t, "echo", "x")
	c.Resources = &proc.Resources{Pids: 8}
	c.Containment = proc.ContainProcessGroup
	if _, err := c.Run(context.Background()); err == nil {
		t.Fatal("Resources with process-group containment started")
	}
}
