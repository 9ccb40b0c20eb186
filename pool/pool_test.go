package pool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/pool"
	"github.com/runboxhq/runbox/proc"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type job struct {
	Op string `json:"op"`
	N  int    `json:"n"`
}

type answer struct {
	N   int    `json:"n"`
	Pid int    `json:"pid"`
	S   string `json:"s,omitempty"`
}

func init() {
	testenv.Register("pool-worker", func(args []string) int {
		pool.ServeWorker(func(_ context.Context, j job) (answer, error) {
			switch j.Op {
			case "sleep":
				time.Sleep(time.Duration(j.N) * time.Millisecond)
			case "fail":
				return answer{}, fmt.Errorf("cannot do %d", j.N)
			case "die":
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			case "garbage":
				os.Stdout.WriteString("this is not a frame\n")
				time.Sleep(time.Hour)
			case "alloc": // N MiB, touched
				mem := make([]byte, j.N<<20)
				for i := 0; i < len(mem); i += 4096 {
					mem[i] = 1
				}
				return answer{N: len(mem) >> 20, Pid: os.Getpid()}, nil
			case "log":
				fmt.Fprintln(os.Stderr, "working on", j.N)
			case "stray": // answers, then writes a frame out of turn N ms later
				go func() {
					time.Sleep(time.Duration(j.N) * time.Millisecond)
					os.Stdout.WriteString(`{"id":999999,"result":0}` + "\n")
				}()
			case "big":
				return answer{N: j.N, Pid: os.Getpid(), S: strings.Repeat("x\r", j.N/2)}, nil
			}
			return answer{N: j.N * 2, Pid: os.Getpid()}, nil
		})
		return 0
	})
}

// newPool starts a pool of Go test workers, closed when the test ends.
func newPool(t *testing.T, cfg pool.Config) *pool.Pool {
	t.Helper()
	argv, env := testenv.Command(t, "pool-worker")
	cfg.Cmd = &proc.Cmd{Args: argv, Env: env}
	return startPool(t, cfg)
}

// startPool starts a pool of cfg.Cmd workers, closed (and checked) when the test ends.
func startPool(t *testing.T, cfg pool.Config) *pool.Pool {
	t.Helper()
	p, err := pool.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func TestMapKeepsOrder(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	in := make([]job, 300)
	for i := range in {
		in[i] = job{Op: "echo", N: i}
	}
	out, err := pool.Map[job, answer](context.Background(), p, in)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{}
	for i, a := range out {
		if a.N != 2*i {
			t.Fatalf("out[%d] = %d", i, a.N)
		}
		pids[a.Pid] = true
	}
	if len(pids) != 2 {
		t.Errorf("tasks ran on %d workers, want 2", len(pids))
	}
}

func TestUnorderedYieldsEveryTask(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	seen := map[int]bool{}
	for i, o := range pool.Unordered[job, answer](context.Background(), p, []job{{"sleep", 50}, {"echo", 1}, {"fail", 2}}) {
		seen[i] = true
		if i == 2 && o.Err == nil || i != 2 && o.Err != nil {
			t.Errorf("task %d: %+v", i, o)
		}
	}
	if len(seen) != 3 {
		t.Errorf("yielded %v", seen)
	}
}

func TestRemoteErrorFailsOnlyItsTask(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	_, err := pool.Map[job, answer](context.Background(), p, []job{{"echo", 1}, {"fail", 7}, {"echo", 3}})
	var re *pool.RemoteError
	if !errors.As(err, &re) || re.Message != "cannot do 7" {
		t.Errorf("err %v", err)
	}
	if a, err := pool.Call[answer](context.Background(), p, job{"echo", 4}); err != nil || a.N != 8 {
		t.Errorf("after a failed task: %v %v", a, err)
	}
}

func TestTaskTimeoutReplacesTheWorker(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, TaskTimeout: 200 * time.Millisecond})
	before, _ := pool.Call[answer](context.Background(), p, job{"echo", 1})
	start := time.Now()
	_, err := pool.Call[answer](context.Background(), p, job{"sleep", 60_000})
	if !errors.Is(err, pool.ErrTaskTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	after, err := pool.Call[answer](context.Background(), p, job{"echo", 2})
	if err != nil || after.Pid == before.Pid || testenv.Alive(before.Pid) {
		t.Errorf("no fresh worker: %v, pid %d then %d", err, before.Pid, after.Pid)
	}
}

func TestCancelKillsTheTasksWorker(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	before, _ := pool.Call[answer](context.Background(), p, job{"echo", 1})
	ctx, cancel := context.WithCancel(context.Background())
	fut := p.Submit(ctx, job{"sleep", 60_000})
	time.Sleep(100 * time.Millisecond)
	cancel()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if _, err := fut.Wait(wait); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled task: %v", err)
	}
	after, err := pool.Call[answer](context.Background(), p, job{"echo", 2})
	if err != nil || after.Pid == before.Pid || testenv.Alive(before.Pid) {
		t.Errorf("no fresh worker: %v, pid %d then %d", err, before.Pid, after.Pid)
	}
}

func TestKilledWorkerFailsItsTaskAndIsReplaced(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	a, _ := pool.Call[answer](context.Background(), p, job{"echo", 1})
	fut := p.Submit(context.Background(), job{"sleep", 60_000})
	time.Sleep(100 * time.Millisecond)
	syscall.Kill(a.Pid, syscall.SIGKILL) // as the OOM killer would
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := fut.Wait(ctx)
	var we *pool.WorkerError
	if !errors.Is(err, pool.ErrWorkerDied) || !errors.As(err, &we) || we.Detail != "killed by SIGKILL" {
		t.Fatalf("err %v", err)
	}
	if b, err := pool.Call[answer](context.Background(), p, job{"echo", 2}); err != nil || b.Pid == a.Pid {
		t.Errorf("no replacement: %v", err)
	}
	// The worker killing itself mid-task is the same.
	if _, err := pool.Call[answer](context.Background(), p, job{"die", 0}); !errors.Is(err, pool.ErrWorkerDied) {
		t.Errorf("self-kill: %v", err)
	}
}

func TestGarbageIsAProtocolError(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	_, err := pool.Call[answer](context.Background(), p, job{"garbage", 0})
	if !errors.Is(err, pool.ErrProtocol) {
		t.Fatalf("err %v", err)
	}
	if _, err := pool.Call[answer](context.Background(), p, job{"echo", 1}); err != nil {
		t.Errorf("after garbage: %v", err)
	}
}

// A frame a worker writes while it has no task is read with its next task's answer:
// that task fails as a protocol error, the worker is replaced, and the pool goes on.
func TestFrameOutOfTurn(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx := context.Background()
	first, err := pool.Call[answer](ctx, p, job{"stray", 20})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := pool.Call[answer](ctx, p, job{"echo", 1}); !errors.Is(err, pool.ErrProtocol) {
		t.Fatalf("the task after the stray frame: %v", err)
	}
	got, err := pool.Call[answer](ctx, p, job{"echo", 2})
	if err != nil || got.N != 4 || got.Pid == first.Pid {
		t.Fatalf("after it: %+v, %v (first worker %d)", got, err, first.Pid)
	}
}

// Submitted tasks nobody waits for are answered all the same (the worker's reader
// goroutine reads for them), in order on one worker.
func TestSubmitWithoutWaiting(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	futs := make([]*pool.Future, 5)
	for i := range futs {
		futs[i] = p.Submit(context.Background(), job{"echo", i})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The last one is only sent once the four before it were answered.
	for i := len(futs) - 1; i >= 0; i-- {
		raw, err := futs[i].Wait(ctx)
		if err != nil || string(raw) == "" {
			t.Fatalf("task %d: %s, %v", i, raw, err)
		}
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil || a.N != 2*i {
			t.Fatalf("task %d: %s, %v", i, raw, err)
		}
	}
}

// A Wait that gives up (its ctx ended) while it reads the answer itself leaves the task
// running; a later Wait gets its result.
func TestWaitGivesUpAndWaitsAgain(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	f := p.Submit(context.Background(), job{"sleep", 300})
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short wait: %v", err)
	}
	raw, err := f.Wait(context.Background())
	if err != nil || !strings.Contains(string(raw), `"n":600`) {
		t.Fatalf("second wait: %s, %v", raw, err)
	}
	if got, err := pool.Call[answer](context.Background(), p, job{"echo", 3}); err != nil || got.N != 6 {
		t.Fatalf("after: %+v, %v", got, err)
	}
}

func TestMaxTasksPerWorkerRecycles(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, MaxTasksPerWorker: 3})
	pids := map[int]int{}
	for i := range 9 {
		a, err := pool.Call[answer](context.Background(), p, job{"echo", i})
		if err != nil {
			t.Fatal(err)
		}
		pids[a.Pid]++
	}
	if len(pids) != 3 {
		t.Errorf("9 tasks with recycling every 3 ran on %d workers: %v", len(pids), pids)
	}
}

// Recycling is planned: it does not count against the restart limit.
func TestRecyclingIsNotARestart(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, MaxTasksPerWorker: 1, MaxRestarts: 2, RestartWindow: time.Minute})
	for i := range 6 {
		if _, err := pool.Call[answer](context.Background(), p, job{"echo", i}); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
}

func TestBrokenPoolFailsFastInsteadOfHanging(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, MaxRestarts: 3, RestartWindow: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	for range 10 {
		if _, err = pool.Call[answer](ctx, p, job{"die", 0}); errors.Is(err, pool.ErrBroken) {
			break
		}
	}
	if !errors.Is(err, pool.ErrBroken) {
		t.Fatalf("never broken: %v", err)
	}
	select {
	case <-p.Broken():
	default:
		t.Error("Broken() not closed")
	}
	if _, err := pool.Call[answer](ctx, p, job{"echo", 1}); !errors.Is(err, pool.ErrBroken) {
		t.Errorf("a broken pool accepted work: %v", err)
	}
}

func TestWorkerThatCannotStart(t *testing.T) {
	_, err := pool.New(context.Background(), pool.Config{Cmd: proc.Command("/bin/true"), Workers: 2})
	if err == nil {
		t.Fatal("a worker without a handshake was accepted")
	}
	_, err = pool.New(context.Background(), pool.Config{Cmd: proc.Command("/bin/echo", "hello"), Workers: 1})
	if err == nil {
		t.Fatal("a worker that prints garbage first was accepted")
	}
	if _, err := pool.New(context.Background(), pool.Config{}); err == nil {
		t.Fatal("no Cmd accepted")
	}
}

func TestBackpressureAndCancel(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, QueueSize: 1})
	slow := p.Submit(context.Background(), job{"sleep", 500})
	queued := p.Submit(context.Background(), job{"echo", 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Submit(ctx, job{"echo", 2}).Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a full queue did not push back: %v", err)
	}
	for _, f := range []*pool.Future{slow, queued} {
		if _, err := f.Wait(context.Background()); err != nil {
			t.Error(err)
		}
	}
}

func TestCloseDrainsAndLogsStderr(t *testing.T) {
	var mu sync.Mutex
	var logged bytes.Buffer
	argv, env := testenv.Command(t, "pool-worker")
	p, err := pool.New(context.Background(), pool.Config{
		Cmd: &proc.Cmd{Args: argv, Env: env}, Workers: 2,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{&mu, &logged}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var futs []*pool.Future
	for i := range 10 {
		futs = append(futs, p.Submit(context.Background(), job{"log", i}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, f := range futs {
		if _, err := f.Wait(context.Background()); err != nil {
			t.Errorf("task %d after Close: %v", i, err)
		}
	}
	if _, err := p.Submit(context.Background(), job{}).Wait(context.Background()); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("submit after close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Contains(logged.Bytes(), []byte("working on 9")) {
		t.Errorf("stderr not forwarded:\n%s", logged.String())
	}
}

func TestCloseGivesUpAtItsDeadline(t *testing.T) {
	argv, env := testenv.Command(t, "pool-worker")
	p, err := pool.New(context.Background(), pool.Config{Cmd: &proc.Cmd{Args: argv, Env: env}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	running := p.Submit(context.Background(), job{"sleep", 60_000})
	queued := p.Submit(context.Background(), job{"echo", 1})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Close: %v after %v", err, time.Since(start))
	}
	if _, err := running.Wait(context.Background()); !errors.Is(err, pool.ErrWorkerDied) {
		t.Errorf("the running task: %v", err)
	}
	if _, err := queued.Wait(context.Background()); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("the queued task: %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestLargeFrames(t *testing.T) {
	// Responses longer than the line splitter's 64 KiB pieces, with carriage returns
	// inside, arrive whole.
	p := newPool(t, pool.Config{Workers: 1})
	for _, n := range []int{65534, 65536, 1 << 20, 5<<20 + 3} {
		a, err := pool.Call[answer](context.Background(), p, job{"big", n})
		if err != nil || len(a.S) != n/2*2 || a.S != strings.Repeat("x\r", n/2) {
			t.Fatalf("n=%d: %v, got %d bytes", n, err, len(a.S))
		}
	}
	// A request longer than the pipe buffer: the worker decodes the job and ignores pad.
	big := map[string]any{"op": "echo", "n": 5, "pad": strings.Repeat("y", 1<<20)}
	if a, err := pool.Call[answer](context.Background(), p, big); err != nil || a.N != 10 {
		t.Errorf("a 1 MiB request: %+v %v", a, err)
	}
	if _, err := pool.Call[answer](context.Background(), p, job{"echo", 1}); err != nil {
		t.Error(err)
	}
}

func TestIdleWorkerDeathIsReplaced(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	a, err := pool.Call[answer](context.Background(), p, job{"echo", 1})
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(a.Pid, syscall.SIGKILL)
	testenv.WaitGone(t, []int{a.Pid}, 5*time.Second)
	// A task can race the death (the process is gone before proc reports it): then it
	// fails as the worker's, and the next one runs on a fresh worker.
	b, err := pool.Call[answer](context.Background(), p, job{"echo", 2})
	if errors.Is(err, pool.ErrWorkerDied) {
		b, err = pool.Call[answer](context.Background(), p, job{"echo", 2})
	}
	if err != nil || b.Pid == a.Pid || b.N != 4 {
		t.Errorf("after an idle worker died: %+v %v", b, err)
	}
}

// A worker that exceeds its cgroup's memory is killed by the kernel: its task fails
// with an error that says so, the pool replaces it, and the next task runs.
func TestOOMKilledWorker(t *testing.T) {
	argv, env := testenv.Command(t, "pool-worker")
	p := startPool(t, pool.Config{Workers: 1, Cmd: &proc.Cmd{Args: argv, Env: env, Resources: &proc.Resources{Memory: 64 << 20}}})
	a, err := pool.Call[answer](context.Background(), p, job{"alloc", 8})
	if err != nil {
		t.Fatalf("8 MiB under a 64 MiB limit: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pool.Call[answer](ctx, p, job{"alloc", 512})
	var we *pool.WorkerError
	if !errors.Is(err, pool.ErrWorkerDied) || !errors.As(err, &we) || !strings.Contains(we.Detail, "OOM killer") {
		t.Fatalf("512 MiB under a 64 MiB limit: err %v, want the worker died of OOM", err)
	}
	if b, err := pool.Call[answer](ctx, p, job{"echo", 3}); err != nil || b.Pid == a.Pid || b.N != 6 {
		t.Fatalf("after the OOM kill: %+v, %v; want a new worker's answer", b, err)
	}
}
