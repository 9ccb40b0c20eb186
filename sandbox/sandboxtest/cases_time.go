package sandboxtest

import (
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

// The busy loops spin in two processes, so that the whole tree has to die.
const (
	pyBusy = `print("spinning", flush=True)
if os.fork() == 0:
    while True:
        pass
while True:
    pass
escaped("the busy loop ended")
`
	jsBusy = `const { spawn } = require('child_process');
spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'inherit' });
console.log('spinning');
for (;;) {}
escaped('the busy loop ended');
`
	shBusy = `echo spinning
( while :; do :; done ) &
while :; do :; done
escaped "the busy loop ended"
`
)

// sleeper sleeps for an hour.
var sleeper = progs(`import time
print("sleeping", flush=True)
time.sleep(3600)
escaped("woke up")
`, `console.log('sleeping');
setTimeout(() => escaped('woke up'), 3600e3);
`, `echo sleeping
sleep 3600
escaped "woke up"
`)

func (s *suite) timeCases() []*hostileCase {
	return []*hostileCase{
		{
			id: "A1", name: "busy_loop",
			code: progs(pyBusy, jsBusy, shBusy),
			// The CPU limit is far away, so that the wall clock fires.
			limits: sandbox.Limits{WallTime: time.Second, CPUTime: 30 * time.Second},
			check: func(t *testing.T, o *outcome) {
				wantTimeout(t, o, "wall")
				wantStdout(t, o, "spinning\n")
				if o.CPUTime < 200*time.Millisecond {
					t.Errorf("cpu time %v for two processes spinning for a second, want ≥ 200ms", o.CPUTime)
				}
			},
		},
		{
			id: "A1", name: "busy_loop_cpu_limit",
			code:   progs(pyBusy, jsBusy, shBusy),
			limits: sandbox.Limits{WallTime: 10 * time.Second, CPUTime: time.Second},
			check: func(t *testing.T, o *outcome) {
				wantTimeout(t, o, "cpu")
				// Two spinners use the second of CPU in half a second of wall time.
				if max := o.Limits.CPUTime + timeoutSlack; o.elapsed > max {
					t.Errorf("Run took %v; the cpu limit of %v should have fired within %v", o.elapsed, o.Limits.CPUTime, max)
				}
				if min := o.Limits.CPUTime * 9 / 10; o.CPUTime < min {
					t.Errorf("cpu time %v under the cpu limit %v that fired", o.CPUTime, o.Limits.CPUTime)
				}
			},
		},
		{
			id: "A2", name: "sleep_forever",
			code: sleeper,
			// The CPU limit (the wall time's, by default) never fires for a sleeper.
			// 2 s: a loaded machine has taken over a second to start node in Docker.
			limits: sandbox.Limits{WallTime: 2 * time.Second},
			check: func(t *testing.T, o *outcome) {
				wantTimeout(t, o, "wall")
				wantStdout(t, o, "sleeping\n")
				if o.CPUTime > 500*time.Millisecond {
					t.Errorf("cpu time %v for a sleeper", o.CPUTime)
				}
			},
		},
		{
			id: "A3", name: "stops_itself",
			code: progs(`import signal
print("stopping", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
escaped("continued after SIGSTOP")
`, `console.log('stopping');
process.kill(process.pid, 'SIGSTOP');
escaped('continued after SIGSTOP');
`, `echo stopping
kill -STOP $$
escaped "continued after SIGSTOP"
`),
			// Node must start and print within it: 2 s leaves room on a loaded machine.
			limits: sandbox.Limits{WallTime: 2 * time.Second},
			check: func(t *testing.T, o *outcome) {
				wantTimeout(t, o, "wall")
				wantStdout(t, o, "stopping\n")
			},
		},
		{
			id: "A4", name: "ignores_sigterm",
			code: progs(`import signal, time
signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM, going on", flush=True))
print("waiting", flush=True)
while True:
    time.sleep(0.05)
`, `process.on('SIGTERM', () => console.log('got SIGTERM, going on'));
console.log('waiting');
setInterval(() => {}, 50);
`, `trap 'echo got SIGTERM, going on' TERM
echo waiting
while :; do sleep 0.05; done
`),
			limits: sandbox.Limits{WallTime: time.Second},
			check: func(t *testing.T, o *outcome) {
				wantTimeout(t, o, "wall")
				if o.Signal != "SIGKILL" {
					t.Errorf("signal %q, want SIGKILL: a program that survives SIGTERM must be killed", o.Signal)
				}
				if !strings.HasPrefix(o.Stdout, "waiting\n") {
					t.Errorf("stdout %q, want it to start with %q", o.Stdout, "waiting\n")
				}
			},
		},
		{
			id: "A5", name: "daemonizes",
			// The daemon, in a session of its own and orphaned, holds stdout and
			// speaks up after 2 s: the backend must have killed it by then.
			code: progs(`import time
print("parent", flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(2)
        escaped("the daemon outlived the program")
        time.sleep(60)
    os._exit(0)
os.wait()
print("parent exits", flush=True)
`, `const { spawn } = require('child_process');
console.log('parent');
const c = spawn('/bin/sh', ['-c', '(sleep 2; echo "ESC""APED the daemon outlived the program"; sleep 60) & exit 0'],
  { detached: true, stdio: 'inherit' });
c.on('exit', () => console.log('parent exits'));
`, `echo parent
setsid bash -c '(sleep 2; echo "ESC""APED the daemon outlived the program"; sleep 60) &'
echo parent exits
`),
			limits: sandbox.Limits{WallTime: 10 * time.Second},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantStdout(t, o, "parent\nparent exits\n")
			},
		},
		{
			id: "A6", name: "cpu_time_over_wall_time",
			// Four spinners on two cores. Python's and Node's spin until the run has
			// used 2 s of CPU, Bash's for 1.2 s of wall time.
			code: progs(`import time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        while time.process_time() < 0.5:
            pass
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
print("done")
`, `const { Worker } = require('worker_threads');
const spin = 'for (;;) { const u = process.cpuUsage(); if (u.user + u.system >= 2e6) break; }';
let left = 4;
for (let i = 0; i < 4; i++) {
  new Worker(spin, { eval: true }).on('exit', () => { if (--left === 0) console.log('done'); });
}
`, `for i in 1 2 3 4; do yes >/dev/null & done
sleep 1.2
kill $(jobs -p)
wait
echo done
`),
			limits: sandbox.Limits{WallTime: 10 * time.Second, CPUTime: 30 * time.Second},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantStdout(t, o, "done\n")
				// Python's and Node's spinners stop at 2 s of CPU between them, so the
				// result must count at least that, whatever the machine's load; on an
				// idle machine with several cores that is more than the wall time.
				// Bash's run for a wall time, so they get what the load leaves them.
				min := 1900 * time.Millisecond
				if o.spec.Language == "bash" {
					min = o.WallTime / 4
				}
				if o.CPUTime < min {
					t.Errorf("cpu time %v (wall time %v) for four spinners, want at least %v: the cpu time of all threads and processes must count", o.CPUTime, o.WallTime, min)
				}
				if o.CPUTime <= o.WallTime {
					t.Logf("cpu time %v ≤ wall time %v: the machine is busy", o.CPUTime, o.WallTime)
				}
			},
		},
		{
			id: "A7", name: "partial_output_kept",
			code: progs(`sys.stdout.write("partial-output\nno-newline")
sys.stderr.write("partial-error")
while True:
    pass
`, `process.stdout.write('partial-output\nno-newline');
process.stderr.write('partial-error');
for (;;) {}
`, `printf 'partial-output\nno-newline'
printf 'partial-error' >&2
while :; do :; done
`),
			limits: sandbox.Limits{WallTime: time.Second, CPUTime: 30 * time.Second},
			check: func(t *testing.T, o *outcome) {
				wantTimeout(t, o, "wall")
				wantStdout(t, o, "partial-output\nno-newline")
				if o.Stderr != "partial-error" {
					t.Errorf("stderr %q, want %q", o.Stderr, "partial-error")
				}
			},
		},
	}
}

// wantTimeout checks a run that the limit named limit ended.
func wantTimeout(t *testing.T, o *outcome, limit string) {
	t.Helper()
	if o.Status != sandbox.StatusTimeout || o.Limit != limit {
		t.Fatalf("status %s limit %q, want timeout %q\n%s", o.Status, o.Limit, limit, describe(o))
	}
	if limit == "wall" {
		if min := o.Limits.WallTime * 9 / 10; o.WallTime < min {
			t.Errorf("wall time %v, under the wall time limit %v that fired", o.WallTime, o.Limits.WallTime)
		}
	}
}

// wantExit checks the status and exit code of a program that exited.
func wantExit(t *testing.T, o *outcome, status sandbox.Status, code int) {
	t.Helper()
	if o.Status != status || o.ExitCode == nil || *o.ExitCode != code {
		t.Fatalf("status %s exit %v signal %q, want %s with exit code %d\n%s", o.Status, deref(o.ExitCode), o.Signal, status, code, describe(o))
	}
}

// wantSignal checks a program that signal ended.
func wantSignal(t *testing.T, o *outcome, signal string) {
	t.Helper()
	if o.Status != sandbox.StatusSignaled || o.Signal != signal {
		t.Fatalf("status %s signal %q exit %v, want signaled %s\n%s", o.Status, o.Signal, deref(o.ExitCode), signal, describe(o))
	}
}

func wantStdout(t *testing.T, o *outcome, want string) {
	t.Helper()
	if o.Stdout != want {
		t.Errorf("stdout %q, want %q", clip(o.Stdout), want)
	}
}
