package proc_test

import (
	"bufio"
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/proc"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// pids parses the pids that helpers print one per line.
func pids(t testing.TB, out []byte) []int {
	t.Helper()
	var ps []int
	for _, f := range strings.Fields(string(out)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("helper printed %q, want pids", out)
		}
		ps = append(ps, n)
	}
	return ps
}

var containments = []proc.Containment{proc.ContainAuto, proc.ContainProcessGroup}

func TestTimeoutKillsTheTree(t *testing.T) {
	for _, cont := range containments {
		t.Run("contain="+string(cont), func(t *testing.T) {
			c := helper(t, "tree-then-hang")
			c.Containment = cont
			c.Timeout = 300 * time.Millisecond
			c.Grace = 200 * time.Millisecond
			start := time.Now()
			res := run(t, c)
			within(t, "timeout", time.Since(start), 3*time.Second)
			if res.Status != proc.StatusTimeout || res.Signal != syscall.SIGTERM {
				t.Errorf("status %s signal %v, want timeout by SIGTERM", res.Status, res.Signal)
			}
			testenv.WaitGone(t, pids(t, res.Stdout), time.Second)
		})
	}
}

func TestSetsidEscapeIsKilledByCgroup(t *testing.T) {
	c := helper(t, "setsid-escape")
	c.Containment = proc.ContainCgroup
	c.Timeout = 300 * time.Millisecond
	c.Grace = 200 * time.Millisecond
	res, err := c.Run(context.Background())
	if errors.Is(err, proc.ErrStart) {
		t.Skipf("no cgroup can be created here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != proc.StatusTimeout || !strings.HasPrefix(string(res.Containment), "cgroup") {
		t.Errorf("status %s containment %s", res.Status, res.Containment)
	}
	testenv.WaitGone(t, pids(t, res.Stdout), time.Second)
}

func TestSetsidEscapeWithProcessGroupIsBoundedByDrain(t *testing.T) {
	// A process group cannot reach a setsid grandchild, which keeps the pipes open:
	// the call still returns within grace + drain, and says the output may be incomplete.
	c := helper(t, "setsid-escape")
	c.Containment = proc.ContainProcessGroup
	c.Grace = 100 * time.Millisecond
	c.DrainTimeout = 300 * time.Millisecond
	p, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Stop only once the grandchild exists (its pid is printed), however slow the start.
	for deadline := time.Now().Add(10 * time.Second); p.Status().StdoutBytes == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	res, err := p.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	within(t, "stop with an escaped grandchild", time.Since(start), 2*time.Second)
	escaped := pids(t, res.Stdout)
	if res.Status != proc.StatusCanceled || !res.OutputIncomplete || len(escaped) != 1 {
		t.Errorf("status %s incomplete %v pids %v", res.Status, res.OutputIncomplete, escaped)
	}
	for _, pid := range escaped {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	testenv.WaitGone(t, escaped, time.Second)
}

func TestIgnoreTermEscalatesToKill(t *testing.T) {
	c := helper(t, "ignore-term")
	c.Timeout = 500 * time.Millisecond
	c.Grace = 300 * time.Millisecond
	start := time.Now()
	res := run(t, c)
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("returned after %v: SIGKILL came before the grace period", d)
	}
	if res.Status != proc.StatusTimeout || res.Signal != syscall.SIGKILL || string(res.Stdout) != "ready\n" {
		t.Errorf("status %s signal %v stdout %q", res.Status, res.Signal, res.Stdout)
	}
}

func TestStopSignalAndImmediateKill(t *testing.T) {
	c := helper(t, "hang")
	c.Timeout = 100 * time.Millisecond
	c.StopSignal = syscall.SIGINT
	if res := run(t, c); res.Signal != syscall.SIGINT {
		t.Errorf("signal %v, want SIGINT", res.Signal)
	}
	c = helper(t, "ignore-term")
	c.Timeout = 100 * time.Millisecond
	c.Grace = -1
	start := time.Now()
	if res := run(t, c); res.Signal != syscall.SIGKILL {
		t.Errorf("signal %v, want SIGKILL at once", res.Signal)
	}
	within(t, "Grace < 0", time.Since(start), time.Second)
}

func TestOrphansAreKilledWhenTheMainProcessExits(t *testing.T) {
	for _, cont := range containments {
		t.Run("contain="+string(cont), func(t *testing.T) {
			c := helper(t, "orphan-holds-pipe")
			c.Containment = cont
			start := time.Now()
			res := run(t, c)
			within(t, "exit with an orphan holding the pipe", time.Since(start), time.Second)
			if res.Status != proc.StatusOK || res.OutputIncomplete {
				t.Errorf("status %s incomplete %v", res.Status, res.OutputIncomplete)
			}
			testenv.WaitGone(t, pids(t, res.Stdout), time.Second)
		})
	}
}

func TestKeepOrphansDrainsWithinTheBound(t *testing.T) {
	c := helper(t, "orphan-holds-pipe")
	c.KeepOrphans = true
	c.DrainTimeout = 300 * time.Millisecond
	start := time.Now()
	res := run(t, c)
	d := time.Since(start)
	within(t, "drain", d, 2*time.Second)
	orphans := pids(t, res.Stdout)
	if d < 250*time.Millisecond || !res.OutputIncomplete {
		t.Errorf("returned after %v incomplete=%v: should wait for the drain bound", d, res.OutputIncomplete)
	}
	for _, pid := range orphans {
		if !testenv.Alive(pid) {
			t.Errorf("KeepOrphans: orphan %d was killed", pid)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	testenv.WaitGone(t, orphans, time.Second)
}

func TestDaemonIsKilledByCgroup(t *testing.T) {
	c := helper(t, "double-fork")
	c.Containment = proc.ContainCgroup
	res, err := c.Run(context.Background())
	if errors.Is(err, proc.ErrStart) {
		t.Skipf("no cgroup can be created here: %v", err)
	}
	if err != nil || res.Status != proc.StatusOK {
		t.Fatalf("err %v status %s", err, res.Status)
	}
	testenv.WaitGone(t, pids(t, res.Stdout), time.Second)
}

func TestContext(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		res, err := helper(t, "hang").Run(ctx)
		if err != nil || res.Status != proc.StatusCanceled || !errors.Is(res.Err(), proc.ErrCanceled) {
			t.Errorf("err %v status %s", err, res.Status)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		res, err := helper(t, "hang").Run(ctx)
		if err != nil || res.Status != proc.StatusTimeout || !errors.Is(res.Err(), proc.ErrTimeout) {
			t.Errorf("err %v status %s", err, res.Status)
		}
	})
	t.Run("already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := helper(t, "echo").Run(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
	})
}

func TestPartialOutputKeptOnTimeout(t *testing.T) {
	c := helper(t, "partial-then-hang", "no newline yet")
	c.Timeout = 200 * time.Millisecond
	res := run(t, c)
	if res.Status != proc.StatusTimeout || string(res.Stdout) != "no newline yet" {
		t.Errorf("status %s stdout %q", res.Status, res.Stdout)
	}
}

func TestLiveHandle(t *testing.T) {
	p, err := helper(t, "lines-slowly", "1000", "5ms").Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Status, Signal and Wait from several goroutines at once (run with -race).
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				s := p.Status()
				if s.Pid != p.Pid() {
					t.Errorf("snapshot pid %d, want %d", s.Pid, p.Pid())
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for range 4 {
		<-done
	}
	// The first line comes once the helper has started, which a loaded machine delays.
	for deadline := time.Now().Add(10 * time.Second); p.Status().StdoutBytes == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	s := p.Status()
	if !s.Running || s.StdoutBytes == 0 || !strings.HasPrefix(string(s.Stdout), "tick 1\n") {
		t.Errorf("snapshot while running: %+v", s)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while running")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if _, err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a short ctx: %v", err)
	}
	cancel()
	res, err := p.Stop(context.Background())
	if err != nil || res.Status != proc.StatusCanceled {
		t.Fatalf("Stop: %v %v", res, err)
	}
	<-p.Done()
	if s := p.Status(); s.Running || s.Stopping != proc.StatusCanceled {
		t.Errorf("snapshot after stop: %+v", s)
	}
	again, _ := p.Wait(context.Background())
	if again != res {
		t.Errorf("Wait after Stop returned another result")
	}
	if r2, _ := p.Stop(context.Background()); r2 != res {
		t.Errorf("Stop of a finished process returned another result")
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal to a finished process: %v", err)
	}
}

func TestSignal(t *testing.T) {
	// /bin/sleep keeps the default disposition of SIGUSR1 (terminate); a Go helper
	// would ignore it.
	p, err := proc.Command("/bin/sleep", "600").Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.Wait(ctx)
	if err != nil {
		p.Stop(context.Background())
		t.Fatalf("the signal did not end the process: %v", err)
	}
	if res.Status != proc.StatusSignaled || res.Signal != syscall.SIGUSR1 {
		t.Errorf("status %s signal %v", res.Status, res.Signal)
	}
	// SignalTree reaches the whole group.
	c := helper(t, "tree-then-hang")
	p, err = c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for p.Status().StdoutBytes == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.SignalTree(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res, err = p.Wait(ctx)
	if err != nil || res.Signal != syscall.SIGKILL {
		t.Fatalf("SignalTree: %v %v", res, err)
	}
	testenv.WaitGone(t, pids(t, res.Stdout), time.Second)
}

func TestInteractive(t *testing.T) {
	c := helper(t, "cat")
	c.Interactive = true
	p, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := p.Recv(); len(b) != 0 || err != nil {
		t.Errorf("Recv with nothing sent: %q %v", b, err)
	}
	if n, err := p.Send([]byte("hello\n")); n != 6 || err != nil {
		t.Fatalf("Send: %d %v", n, err)
	}
	got, err := p.RecvFor(context.Background(), 300*time.Millisecond)
	if string(got) != "hello\n" || err != nil {
		t.Errorf("RecvFor: %q %v", got, err)
	}
	// The process as an io.ReadWriteCloser, with bufio on top.
	go func() {
		w := bufio.NewWriter(p)
		for i := range 10000 {
			w.WriteString("row " + strconv.Itoa(i) + "\n")
		}
		w.Flush()
		p.Close()
	}()
	sc := bufio.NewScanner(p)
	n := 0
	for sc.Scan() {
		if sc.Text() != "row "+strconv.Itoa(n) {
			t.Fatalf("line %d = %q", n, sc.Text())
		}
		n++
	}
	if n != 10000 || sc.Err() != nil {
		t.Errorf("read %d lines, err %v", n, sc.Err())
	}
	res, _ := p.Wait(context.Background())
	if res.Status != proc.StatusOK {
		t.Errorf("status %s", res.Status)
	}
	if _, err := p.Send([]byte("late")); !errors.Is(err, proc.ErrInputClosed) {
		t.Errorf("Send after exit: %v", err)
	}
	if _, err := p.Recv(); err == nil {
		t.Errorf("Recv after EOF: want io.EOF")
	}
}

func TestInteractiveCannotDeadlock(t *testing.T) {
	// The child writes 8 MiB before reading anything while we write 8 MiB to it:
	// Write never waits on our reading, so this completes.
	c := helper(t, "duplex", strconv.Itoa(8<<20))
	c.Interactive = true
	p, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Write(make([]byte, 8<<20)); n != 8<<20 || err != nil {
		t.Fatalf("Write: %d %v", n, err)
	}
	p.CloseInput()
	res, _ := p.Wait(context.Background())
	if res.Status != proc.StatusOK || res.StdoutBytes != 8<<20 {
		t.Errorf("status %s stdout %d", res.Status, res.StdoutBytes)
	}
}

func TestSendIsBoundedAndNonBlocking(t *testing.T) {
	c := helper(t, "hang") // never reads stdin
	c.Interactive = true
	p, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	total := 0
	for {
		n, err := p.Send(make([]byte, 1<<20))
		total += n
		if errors.Is(err, proc.ErrSendFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if total > 2*proc.DefaultSendLimit {
			t.Fatalf("Send accepted %d bytes without bound", total)
		}
	}
	if total < proc.DefaultSendLimit {
		t.Errorf("accepted %d, want at least the buffer", total)
	}
	if _, err := helper(t, "echo").Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNotInteractive(t *testing.T) {
	p, err := helper(t, "echo", "x").Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.Wait(context.Background())
	if _, err := p.Send([]byte("x")); !errors.Is(err, proc.ErrNotInteractive) {
		t.Errorf("Send: %v", err)
	}
	if _, err := p.Recv(); !errors.Is(err, proc.ErrNotInteractive) {
		t.Errorf("Recv: %v", err)
	}
}
