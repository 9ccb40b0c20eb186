package pool_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/jsonpipe"
	"github.com/runboxhq/runbox/pool"
	"github.com/runboxhq/runbox/proc"
)

// Workers written with python/runbox_worker.py and js/runbox_worker.js, run by the
// real interpreters with a clean environment. Each script behaves according to the
// job's op, and answers like the Go pool-worker: {n: 2n, pid}.

const pyWorkerScript = `import os, sys, time
# -I leaves the script's directory out of sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runbox_worker import serve

def handle(p):
    op, n = p["op"], p["n"]
    if op == "raise":
        raise ValueError("cannot do %d" % n)
    if op == "print":
        print("printed to stdout", n)
        sys.stdout.flush()
        os.write(1, b"written to fd 1\n")
    if op == "sleep":
        time.sleep(n / 1000)
    if op == "exit":
        os._exit(3)
    return {"n": n * 2, "pid": os.getpid()}

serve(handle)
`

const jsWorkerScript = `const { serve } = require('./runbox_worker.js');

serve(async (p) => {
  switch (p.op) {
    case 'raise':
      throw new TypeError('cannot do ' + p.n);
    case 'print':
      console.log('printed to stdout', p.n);
      process.stdout.write('written to fd 1\n');
      break;
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, p.n));
      break;
    case 'exit':
      process.exit(3);
  }
  return { n: p.n * 2, pid: process.pid };
});
`

type interpWorker struct {
	lang      string
	interp    string
	flags     []string
	module    string // the worker module, relative to the package directory
	script    string
	raiseType string
}

var interpWorkers = []interpWorker{
	{lang: "python", interp: "/usr/bin/python3", flags: []string{"-I"}, module: "python/runbox_worker.py", script: pyWorkerScript, raiseType: "ValueError"},
	{lang: "node", interp: "/usr/bin/node", module: "js/runbox_worker.js", script: jsWorkerScript, raiseType: "TypeError"},
}

// cmd writes the worker script next to a copy of the module in a temporary directory
// and returns the command that runs it. It skips when the interpreter is missing.
func (iw interpWorker) cmd(tb testing.TB) *proc.Cmd {
	tb.Helper()
	if _, err := os.Stat(iw.interp); err != nil {
		tb.Skipf("%s worker: interpreter %s not available: %v", iw.lang, iw.interp, err)
	}
	mod, err := os.ReadFile(iw.module)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(iw.module)), mod, 0o644); err != nil {
		tb.Fatal(err)
	}
	script := filepath.Join(dir, "worker"+filepath.Ext(iw.module))
	if err := os.WriteFile(script, []byte(iw.script), 0o644); err != nil {
		tb.Fatal(err)
	}
	args := append([]string{iw.interp}, iw.flags...)
	return &proc.Cmd{Args: append(args, script), Env: []string{"PATH=/usr/bin:/bin"}}
}

func (iw interpWorker) pool(t *testing.T, cfg pool.Config) *pool.Pool {
	t.Helper()
	cfg.Cmd = iw.cmd(t)
	return startPool(t, cfg)
}

func TestInterpreterWorkers(t *testing.T) {
	for _, iw := range interpWorkers {
		t.Run(iw.lang, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("map keeps order", func(t *testing.T) {
				p := iw.pool(t, pool.Config{Workers: 2})
				in := make([]job, 50)
				for i := range in {
					in[i] = job{Op: "echo", N: i}
				}
				out, err := pool.Map[job, answer](ctx, p, in)
				if err != nil {
					t.Fatal(err)
				}
				for i, a := range out {
					if a.N != 2*i || a.Pid == 0 {
						t.Fatalf("out[%d] = %+v", i, a)
					}
				}
			})

			t.Run("raise", func(t *testing.T) {
				p := iw.pool(t, pool.Config{Workers: 1})
				_, err := pool.Call[answer](ctx, p, job{"raise", 7})
				re, ok := errors.AsType[*pool.RemoteError](err)
				if !ok || re.Type != iw.raiseType || re.Message != "cannot do 7" {
					t.Fatalf("err %v, want a %s RemoteError", err, iw.raiseType)
				}
				if a, err := pool.Call[answer](ctx, p, job{"echo", 4}); err != nil || a.N != 8 {
					t.Errorf("after a failed task: %+v %v", a, err)
				}
			})

			t.Run("print goes to stderr", func(t *testing.T) {
				var mu sync.Mutex
				var logged bytes.Buffer
				p := iw.pool(t, pool.Config{Workers: 1, Logger: slog.New(slog.NewTextHandler(&lockedWriter{&mu, &logged}, nil))})
				for i := range 3 {
					a, err := pool.Call[answer](ctx, p, job{"print", i})
					if err != nil || a.N != 2*i {
						t.Fatalf("print %d: %+v %v", i, a, err)
					}
				}
				if a, err := pool.Call[answer](ctx, p, job{"echo", 5}); err != nil || a.N != 10 {
					t.Fatalf("after printing: %+v %v", a, err)
				}
				// stderr lines are forwarded asynchronously.
				deadline := time.Now().Add(5 * time.Second)
				for {
					mu.Lock()
					s := logged.String()
					mu.Unlock()
					if strings.Contains(s, "printed to stdout 2") && strings.Count(s, "written to fd 1") == 3 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("printed lines not forwarded from stderr:\n%s", s)
					}
					time.Sleep(10 * time.Millisecond)
				}
			})

			t.Run("task timeout", func(t *testing.T) {
				p := iw.pool(t, pool.Config{Workers: 1, TaskTimeout: 300 * time.Millisecond})
				before, err := pool.Call[answer](ctx, p, job{"echo", 1})
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				_, err = pool.Call[answer](ctx, p, job{"sleep", 60_000})
				if !errors.Is(err, pool.ErrTaskTimeout) || time.Since(start) > 5*time.Second {
					t.Fatalf("err %v after %v", err, time.Since(start))
				}
				after, err := pool.Call[answer](ctx, p, job{"echo", 2})
				if err != nil || after.N != 4 || after.Pid == before.Pid || testenv.Alive(before.Pid) {
					t.Errorf("next task: %+v %v (pid before %d)", after, err, before.Pid)
				}
			})

			t.Run("worker exits", func(t *testing.T) {
				p := iw.pool(t, pool.Config{Workers: 1})
				_, err := pool.Call[answer](ctx, p, job{"exit", 0})
				we, ok := errors.AsType[*pool.WorkerError](err)
				if !errors.Is(err, pool.ErrWorkerDied) || !ok || we.Detail != "exited with status 3" {
					t.Fatalf("err %v", err)
				}
				if a, err := pool.Call[answer](ctx, p, job{"echo", 3}); err != nil || a.N != 6 {
					t.Errorf("after the worker exited: %+v %v", a, err)
				}
			})

			t.Run("raw protocol", func(t *testing.T) {
				// What the pool never sends: ping, garbage, unknown methods; then EOF.
				c := iw.cmd(t)
				cmd := exec.Command(c.Args[0], c.Args[1:]...)
				cmd.Env = c.Env
				cmd.Stdin = strings.NewReader(`{"id":1,"method":"ping"}` + "\n" +
					"not json\n" +
					`{"id":3,"method":"frob"}` + "\n" +
					`{"id":4,"method":"call","params":{"op":"print","n":21}}` + "\n")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("worker did not exit 0 at EOF: %v\n%s", err, stderr.String())
				}
				sc := bufio.NewScanner(bytes.NewReader(out))
				var frames []map[string]any
				for sc.Scan() {
					var f map[string]any
					if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
						t.Fatalf("stdout line %q is not a frame", sc.Text())
					}
					frames = append(frames, f)
				}
				if len(frames) != 5 {
					t.Fatalf("%d frames, want 5:\n%s", len(frames), out)
				}
				if frames[0]["runbox_worker"] != 1.0 || frames[0]["pid"] == nil {
					t.Errorf("handshake %v", frames[0])
				}
				if frames[1]["id"] != 1.0 || frames[1]["result"] != "pong" {
					t.Errorf("ping: %v", frames[1])
				}
				for i, id := range map[int]float64{2: 0, 3: 3} {
					e, _ := frames[i]["error"].(map[string]any)
					if frames[i]["id"] != id || e["type"] != "BadRequest" {
						t.Errorf("frame %d: %v, want a BadRequest error with id %v", i, frames[i], id)
					}
				}
				if r, _ := frames[4]["result"].(map[string]any); frames[4]["id"] != 4.0 || r["n"] != 42.0 {
					t.Errorf("call: %v", frames[4])
				}
				if !strings.Contains(stderr.String(), "printed to stdout 21") {
					t.Errorf("stderr %q", stderr.String())
				}
			})
		})
	}
}

// pyOneShot is the process-per-task pattern: one JSON in, one JSON out, exit.
const pyOneShot = `import json, os, sys
p = json.load(sys.stdin)
json.dump({"n": p["n"] * 2, "pid": os.getpid()}, sys.stdout)
`

// BenchmarkPythonPoolVsProcessPerTask compares tasks/s of a pool of 2 Python workers
// with one Python process per task (jsonpipe), on the same trivial task.
func BenchmarkPythonPoolVsProcessPerTask(b *testing.B) {
	py := interpWorkers[0]
	ctx := context.Background()
	// run calls task b.N times from callers goroutines and reports tasks/s.
	run := func(b *testing.B, callers int, task func() (answer, error)) {
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range callers {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					a, err := task()
					if err != nil || a.N != 2 {
						b.Errorf("task: %+v %v", a, err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
	}

	b.Run("pool", func(b *testing.B) {
		cmd := py.cmd(b)
		p, err := pool.New(ctx, pool.Config{Cmd: cmd, Workers: 2})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close(context.Background()) })
		run(b, 4, func() (answer, error) { return pool.Call[answer](ctx, p, job{"echo", 1}) })
	})

	b.Run("process_per_task", func(b *testing.B) {
		if _, err := os.Stat(py.interp); err != nil {
			b.Skipf("python worker: interpreter %s not available: %v", py.interp, err)
		}
		script := filepath.Join(b.TempDir(), "oneshot.py")
		if err := os.WriteFile(script, []byte(pyOneShot), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd := &proc.Cmd{Args: []string{py.interp, "-I", script}, Env: []string{"PATH=/usr/bin:/bin"}}
		run(b, 2, func() (answer, error) { return jsonpipe.Call[answer](ctx, cmd, job{"echo", 1}) })
	})
}
