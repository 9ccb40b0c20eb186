package proc_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/proc"
)

func TestThousandsAtOnce(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Go(func() {
			res, err := proc.Run(context.Background(), "/bin/echo", strconv.Itoa(i))
			if err != nil || res.Status != proc.StatusOK || string(res.Stdout) != strconv.Itoa(i)+"\n" {
				if failed.Add(1) == 1 {
					t.Errorf("run %d: %v %+v", i, err, res)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d concurrent runs failed", f, n)
	}
}

func TestLimiter(t *testing.T) {
	lim := proc.NewLimiter(3)
	var wg sync.WaitGroup
	var peak atomic.Int32
	for range 12 {
		wg.Go(func() {
			c := proc.Command("/bin/sleep", "0.05")
			c.Limiter = lim
			p, err := c.Start(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			for {
				cur := int32(lim.InUse())
				old := peak.Load()
				if cur <= old || peak.CompareAndSwap(old, cur) {
					break
				}
			}
			p.Wait(context.Background())
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p < 1 {
		t.Errorf("peak in use %d, want 1..3", p)
	}
	if lim.InUse() != 0 {
		t.Errorf("slots leaked: %d in use", lim.InUse())
	}

	// A full limiter makes Start wait on the context, not forever.
	full := proc.NewLimiter(1)
	c := helper(t, "hang")
	c.Limiter = full
	p, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c2 := proc.Command("/bin/true")
	c2.Limiter = full
	if _, err := c2.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start on a full limiter: %v", err)
	}
	p.Stop(context.Background())
	if full.InUse() != 0 {
		t.Errorf("slot not released after Stop")
	}
}

// The parent-death test runs a helper that uses proc to start a child, kills that
// helper with SIGKILL, and checks that the child died with it.
func init() {
	testenv.Register("proc-parent", func(args []string) int {
		c := proc.Command("/bin/sleep", "600")
		c.ExtraEnv = []string{testenv.EnvOwner + "=" + os.Getenv(testenv.EnvOwner)}
		c.Containment = proc.Containment(args[0])
		p, err := c.Start(context.Background())
		if err != nil {
			return 1
		}
		os.Stdout.WriteString(strconv.Itoa(p.Pid()) + "\n")
		p.Wait(context.Background())
		return 0
	})
}

func TestChildDiesWithParent(t *testing.T) {
	for _, cont := range []proc.Containment{proc.ContainAuto, proc.ContainProcessGroup, proc.ContainNone} {
		t.Run("contain="+string(cont), func(t *testing.T) {
			c := helper(t, "proc-parent", string(cont))
			c.Interactive = true
			parent, err := c.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			out, err := parent.RecvFor(context.Background(), 5*time.Second)
			child := pids(t, out)
			if len(child) != 1 || !testenv.Alive(child[0]) {
				t.Fatalf("no live child reported: %q %v", out, err)
			}
			if err := syscall.Kill(parent.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			parent.Wait(context.Background())
			testenv.WaitGone(t, child, 2*time.Second)
		})
	}
}

// tree-then-hang starts a hang grandchild in its own process group that inherits the
// pipes, prints its pid, then hangs: the tree a timeout must kill whole.
func init() {
	testenv.Register("tree-then-hang", func(args []string) int {
		exe, _ := os.Executable()
		env := append(os.Environ(), testenv.EnvHelper+"=hang")
		gc := &exec.Cmd{Path: exe, Args: []string{exe}, Env: env, Stdout: os.Stdout, Stderr: os.Stderr}
		if err := gc.Start(); err != nil {
			return 1
		}
		os.Stdout.WriteString(strconv.Itoa(gc.Process.Pid) + "\n")
		select {}
	})
}
