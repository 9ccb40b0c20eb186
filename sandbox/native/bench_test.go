package native_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

// Every benchmark runs with the default limits; bench/sandbox.sh compares them with bare
// processes and bwrap.
var (
	trueCmd  = []string{"/bin/true"}
	printCmd = []string{"/usr/bin/python3", "-I", "-S", "-c", "print(1)"}
)

// parallelRuns is how many runs BenchmarkParallel50 starts at once.
const parallelRuns = 50

// BenchmarkTrue is /bin/true in a box with every default limit, from a warm pool.
func BenchmarkTrue(b *testing.B) { benchRuns(b, newWarmBackend(b), trueCmd) }

// BenchmarkTrueCold is BenchmarkTrue with no warm boxes: each run waits for its box to
// be built.
func BenchmarkTrueCold(b *testing.B) { benchRuns(b, newColdBackend(b), trueCmd) }

// BenchmarkTrueNamespacesOnly is a floor under BenchmarkTrue and BenchmarkTrueCold:
// /bin/true started by os/exec in new user, pid, mount, ipc and uts namespaces, and
// nothing else (no root, cgroup, limits, seccomp or output capture).
func BenchmarkTrueNamespacesOnly(b *testing.B) {
	var times []time.Duration
	for b.Loop() {
		c := exec.Command(trueCmd[0])
		c.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
		start := time.Now()
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	reportP50(b, times)
}

// BenchmarkTruePrestarted is the floor under a warm BenchmarkTrue: a process started
// ahead of time (/bin/sh, blocked reading a pipe) is told to exec /bin/true, and its
// end is waited for: one wake-up, the exec, the exit and the reaping, no isolation.
// Only that part is timed.
func BenchmarkTruePrestarted(b *testing.B) {
	var times []time.Duration
	for b.Loop() {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		c := exec.Command("/bin/sh", "-c", "read word; exec "+trueCmd[0])
		c.Stdin = r
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		r.Close()
		time.Sleep(20 * time.Millisecond) // started, and blocked in read
		start := time.Now()
		if _, err := w.Write([]byte("go\n")); err != nil {
			b.Fatal(err)
		}
		if err := c.Wait(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		w.Close()
	}
	reportP50(b, times)
	var sum time.Duration
	for _, t := range times {
		sum += t
	}
	b.ReportMetric(float64(sum)/float64(len(times))/float64(time.Millisecond), "mean-ms")
}

// BenchmarkPythonPrint is print(1) by /usr/bin/python3 -I -S in a box, from a warm pool.
func BenchmarkPythonPrint(b *testing.B) { benchRuns(b, newWarmBackend(b), printCmd) }

// BenchmarkParallel50 starts parallelRuns runs of print(1) at once and waits for them
// all; one op is one batch. It reports runs/s and the p50 latency of single runs.
func BenchmarkParallel50(b *testing.B) {
	be := newWarmBackend(b)
	ctx := context.Background()
	spec := sandbox.Spec{Command: printCmd}
	mustRun(b, be, spec) // start the warm pool

	var (
		mu    sync.Mutex
		times []time.Duration
		bad   atomic.Int64
	)
	for b.Loop() {
		var wg sync.WaitGroup
		for range parallelRuns {
			wg.Go(func() {
				start := time.Now()
				res, err := be.Run(ctx, spec)
				d := time.Since(start)
				if err != nil || res.Status != sandbox.StatusOK {
					bad.Add(1)
					b.Error(describe(res, err)) // Error, not Fatal: this is not the benchmark's goroutine
					return
				}
				mu.Lock()
				times = append(times, d)
				mu.Unlock()
			})
		}
		wg.Wait()
		if n := bad.Load(); n > 0 {
			b.Fatalf("%d of %d runs were not ok", n, parallelRuns)
		}
	}
	b.ReportMetric(float64(b.N*parallelRuns)/b.Elapsed().Seconds(), "runs/s")
	reportP50(b, times)
}

func newColdBackend(b testing.TB) *native.Backend {
	be, err := native.New(context.Background(), native.Config{Warm: -1})
	if err != nil {
		b.Skipf("native backend unavailable: %v", err)
	}
	b.Cleanup(func() { be.Close() })
	return be
}

// benchRuns runs cmd once per op, one run at a time (see benchSpec).
func benchRuns(b *testing.B, be *native.Backend, cmd []string) {
	benchSpec(b, be, sandbox.Spec{Command: cmd})
}

func mustRun(b *testing.B, be *native.Backend, spec sandbox.Spec) {
	res, err := be.Run(context.Background(), spec)
	if err != nil || res.Status != sandbox.StatusOK {
		b.Fatal(describe(res, err))
	}
}

func describe(res *sandbox.Result, err error) string {
	if err != nil {
		return err.Error()
	}
	return string(res.Status) + ": " + res.Error + "\nstderr: " + res.Stderr
}

// reportP50 reports the median of times in milliseconds.
func reportP50(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2])/float64(time.Millisecond), "p50-ms")
}
