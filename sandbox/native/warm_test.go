package native_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

// leakSet is a run that leaves everything it can behind: module and builtin globals,
// files in every writable place, environment, signal handlers, threads, a process,
// shared memory (a file in /dev/shm, a SysV segment), and a secret in its memory and
// its code.
const leakSet = `
import builtins, ctypes, json, os, signal, subprocess, sys, threading, time
json.LEAK = builtins.LEAK = os.LEAK = 1
sys.path.append("/leak")
sys.modules["leakmod"] = json
os.environ["LEAK"] = "1"
os.putenv("LEAK2", "1")
for d in ("/work", "/tmp", "/dev/shm"):
    open(d + "/leak", "w").write("x")
signal.signal(signal.SIGTERM, lambda *a: None)
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
subprocess.Popen(["/bin/sleep", "60"], start_new_session=True)
assert ctypes.CDLL(None).shmget(0, 4096, 0o1666) >= 0  # IPC_PRIVATE, IPC_CREAT, 0666
secret = bytearray(b"runbox-secret-" * 1000)
print("ctypes" in sys.modules, os.getpid(), flush=True)
`

// leakCheck prints what it finds of leakSet's run; a clean run prints "clean".
const leakCheck = `
import builtins, json, os, signal, sys, threading
found = []
if hasattr(json, "LEAK") or hasattr(builtins, "LEAK") or hasattr(os, "LEAK"): found.append("globals")
if "/leak" in sys.path or "leakmod" in sys.modules: found.append("sys")
if "LEAK" in os.environ or "LEAK2" in os.environ or b"LEAK" in open("/proc/self/environ", "rb").read(): found.append("env")
for d in ("/work", "/tmp", "/dev/shm"):
    if os.path.exists(d + "/leak"): found.append("file " + d)
if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL or signal.getsignal(signal.SIGUSR1) != signal.SIG_DFL: found.append("signals")
if threading.active_count() != 1: found.append("threads")
procs = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
if procs != [1, os.getpid()]: found.append("processes %s" % procs)
if "secret" in globals(): found.append("secret")
if len(open("/proc/sysvipc/shm").read().splitlines()) > 1: found.append("sysv shm")
# The first run's code (its config) in this process's memory: the needle is reversed
# here, so that this code does not hold it.
rev, hits = b"-terces-xobnur", 0
with open("/proc/self/mem", "rb", 0) as mem:
    for line in open("/proc/self/maps").read().splitlines():
        f = line.split()
        if f[1][0] != "r": continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        try:
            mem.seek(lo)
            hits += mem.read(hi - lo)[::-1].count(rev)
        except (OSError, OverflowError, ValueError):
            pass
if hits: found.append("its code in memory")
print("ctypes" in sys.modules, " ".join(found) or "clean", os.getpid())
`

// TestWarmRunsLeakNothing: a forked run sees nothing of the run before it, in the
// same template (the uid of sequential runs is the same, so only the fork's isolation
// stands between them). Without ready runs, sequential runs have the same pid 1 (it
// serves one run after another): the later programs are not their namespace's first
// process, and still find nothing.
func TestWarmRunsLeakNothing(t *testing.T) {
	for _, ready := range []int{0, -1} {
		t.Run(fmt.Sprintf("ready=%d", ready), func(t *testing.T) {
			ctx := context.Background()
			b := newWarmBackendReady(t, ready)
			run := func(code string) string {
				t.Helper()
				res, err := b.Run(ctx, sandbox.Spec{Language: "python", Code: code})
				if err != nil || res.Status != sandbox.StatusOK {
					t.Fatalf("%s: %v\n%s", describeResult(res), err, res.Stderr)
				}
				return strings.TrimSpace(res.Stdout)
			}
			set := run(leakSet)
			if !strings.HasPrefix(set, "True ") {
				t.Fatalf("the run was not forked from the zygote (ctypes not preloaded): %q", set)
			}
			for range 3 {
				got := run(leakCheck)
				i := strings.LastIndexByte(got, ' ')
				if found := got[:max(i, 0)]; found != "True clean" {
					t.Errorf("after a run that left things behind: %q", got)
				}
				if pid := got[i+1:]; ready < 0 && pid == "2" {
					t.Errorf("the program is its namespace's first process (pid %s): its pid 1 served no run before", pid)
				}
			}
		})
	}
}

// TestWarmPid1sBounded: a burst of runs at once has a pid 1 each; once it is over, the
// zygote keeps at most 2 × CPUs + 2 of them waiting (it sends the rest away as the
// next runs come), and those serve the runs after it.
func TestWarmPid1sBounded(t *testing.T) {
	ctx := context.Background()
	b := newWarmBackendReady(t, -1)
	run := func(code string) {
		res, err := b.Run(ctx, sandbox.Spec{Language: "python", Code: code})
		if err != nil || res.Status != sandbox.StatusOK {
			t.Errorf("%s: %v\n%s", describeResult(res), err, res.Stderr)
		}
	}
	const burst = 16
	maxIdle := 2*runtime.NumCPU() + 2
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() { run("import time; time.sleep(1)") })
	}
	wg.Wait()
	if n := len(native.RunPid1s(b)); n <= maxIdle {
		t.Fatalf("%d pid 1s after %d runs at once: the burst did not need more than %d", n, burst, maxIdle)
	}
	for range 3 {
		run("print(1)")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(native.RunPid1s(b)) > maxIdle && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(native.RunPid1s(b)); n > maxIdle {
		t.Errorf("%d pid 1s kept after the burst, want at most %d", n, maxIdle)
	}
}

// TestWarmPid1KilledWaiting: a pid 1 killed while it waits for a run is passed over:
// the next run is not handed to it (it would wait out its wall time for nothing).
func TestWarmPid1KilledWaiting(t *testing.T) {
	ctx := context.Background()
	b := newWarmBackendReady(t, -1)
	run := func() {
		t.Helper()
		res, err := b.Run(ctx, sandbox.Spec{Language: "python", Code: "print(1)", Limits: sandbox.Limits{WallTime: 20 * time.Second}})
		if err != nil || res.Status != sandbox.StatusOK || res.Stdout != "1\n" {
			t.Fatalf("%s: %v\n%s", describeResult(res), err, res.Stderr)
		}
		if res.WallTime > 10*time.Second {
			t.Errorf("the run took %v: it waited for a pid 1 that was gone", res.WallTime)
		}
	}
	run()
	pids := native.RunPid1s(b)
	if len(pids) == 0 {
		t.Fatal("no pid 1 waits after a run")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill pid 1 %d: %v", pid, err)
		}
	}
	run()
	run()
}

// TestWarmZygoteStopped: a run handed to a zygote that never takes it (stopped)
// ends at its wall time with a sandbox error, although its pipes' other ends are in a
// message nobody reads.
func TestWarmZygoteStopped(t *testing.T) {
	ctx := context.Background()
	b := newWarmBackendReady(t, -1)
	z := native.Zygote(b)
	if z == 0 {
		t.Fatal("no zygote")
	}
	if err := syscall.Kill(z, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(z, syscall.SIGCONT)
	done := make(chan *sandbox.Result, 1)
	go func() {
		res, err := b.Run(ctx, sandbox.Spec{Language: "python", Code: "print(1)", Limits: sandbox.Limits{WallTime: time.Second}})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- res
	}()
	select {
	case res := <-done:
		if res != nil && res.Status == sandbox.StatusOK {
			t.Errorf("a run in a stopped zygote: %s", describeResult(res))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a run handed to a stopped zygote did not end in 30 s")
	}
}

// TestWarmConcurrentUIDs: runs in progress at once in one template each have a uid of
// their own (RLIMIT_NPROC counts per uid), and see none of each other's processes.
func TestWarmConcurrentUIDs(t *testing.T) {
	b := newWarmBackend(t)
	ctx := context.Background()
	const n = 4
	code := `
import os, sys, time
print("ctypes" in sys.modules, os.getuid(), sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
sys.stdout.flush()
time.sleep(1)
`
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := b.Run(ctx, sandbox.Spec{Language: "python", Code: code})
			if err != nil || res.Status != sandbox.StatusOK {
				t.Errorf("%s: %v", describeResult(res), err)
				return
			}
			outs[i] = strings.TrimSpace(res.Stdout)
		})
	}
	wg.Wait()
	uids := map[string]bool{}
	for _, o := range outs {
		f := strings.SplitN(o, " ", 3)
		if len(f) != 3 || f[0] != "True" || f[2] != "[1, 2]" {
			t.Errorf("run saw %q, want a forked run seeing only its pid 1 and itself", o)
			continue
		}
		uids[f[1]] = true
	}
	if len(uids) != n {
		t.Errorf("%d runs at once had uids %v, want %d different ones", n, uids, n)
	}
}

// TestWarmSignalsAsCold: a forked run starts with the signal dispositions and mask a
// run exec'd by the Go init has (nothing ignored or blocked that a fresh process would
// not have), so a program interrupting itself ends the same way in both.
func TestWarmSignalsAsCold(t *testing.T) {
	warm, cold := newWarmBackend(t), newColdBackend(t)
	specs := []sandbox.Spec{
		{Command: []string{"/bin/grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"}},
		{Command: []string{"/bin/sh", "-c", "kill -INT $$; echo survived"}},
		{Language: "python", Code: "import os, signal\nprint(signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)\nos.kill(os.getpid(), signal.SIGINT)\nprint('survived')\n"},
		{Language: "python", Code: "import signal\nprint(signal.getsignal(signal.SIGPIPE), signal.getsignal(signal.SIGXFSZ), signal.pthread_sigmask(signal.SIG_BLOCK, []))\n"},
	}
	ctx := context.Background()
	for _, spec := range specs {
		w, err := warm.Run(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cold.Run(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		how := func(r *sandbox.Result) string {
			if r.ExitCode != nil {
				return fmt.Sprintf("%s, exit %d, stdout %q", r.Status, *r.ExitCode, r.Stdout)
			}
			return fmt.Sprintf("%s, signal %s, stdout %q", r.Status, r.Signal, r.Stdout)
		}
		if how(w) != how(c) {
			t.Errorf("%v %s:\nwarm %s\ncold %s", spec.Command, spec.Language, how(w), how(c))
		}
	}
}

// newWarmBackend returns a backend whose template is ready, so that its runs are forked.
func newWarmBackend(t testing.TB) *native.Backend {
	t.Helper()
	b := newBackend(t)
	if err := b.Prewarm(context.Background()); err != nil {
		t.Fatalf("Prewarm: %v", err)
	}
	return b
}

// newWarmBackendReady is newWarmBackend with Config.Ready set: ready < 0 keeps no
// ready runs, so that each run is handed to a pid 1 the way a message is.
func newWarmBackendReady(t testing.TB, ready int) *native.Backend {
	t.Helper()
	b, err := native.New(context.Background(), native.Config{Ready: ready})
	if err != nil {
		t.Skipf("native backend unavailable: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Prewarm(context.Background()); err != nil {
		t.Fatalf("Prewarm: %v", err)
	}
	return b
}

func describeResult(r *sandbox.Result) string {
	if r == nil {
		return "no result"
	}
	return string(r.Status) + " " + r.Error
}

// TestWarmTemplateDies: a run after the template was killed is still served (cold,
// while another template starts), and the runs after it are forked again.
func TestWarmTemplateDies(t *testing.T) {
	b := newWarmBackend(t)
	ctx := context.Background()
	held := b.HeldProcesses()
	if len(held) < 2 {
		t.Fatalf("held processes %v, want the template's init and its zygote", held)
	}
	for _, pid := range held {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Once they are gone (with them the template's pid namespace, and the ready
	// runs in it): a run that took a ready run in the instant the namespace was being
	// torn down would fail, as any run in progress on a template that dies does.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		alive := false
		for _, pid := range held {
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z ") {
				alive = true
			}
		}
		if !alive {
			break
		}
	}
	spec := sandbox.Spec{Language: "python", Code: "import sys; print('ctypes' in sys.modules)"}
	res, err := b.Run(ctx, spec)
	if err != nil || res.Status != sandbox.StatusOK {
		t.Fatalf("run after the template died: %s: %v\n%s", describeResult(res), err, res.Stderr)
	}
	if err := b.Prewarm(ctx); err != nil {
		t.Fatalf("Prewarm after the template died: %v", err)
	}
	res, err = b.Run(ctx, spec)
	if err != nil || res.Status != sandbox.StatusOK || strings.TrimSpace(res.Stdout) != "True" {
		t.Fatalf("run with the new template: %s: %v %q", describeResult(res), err, res.Stdout)
	}
}

// TestWarmWithoutReadyRuns: with Config.Ready < 0 runs are still forked from the
// template's zygote, and nothing is made ahead of them; by default ready runs are.
func TestWarmWithoutReadyRuns(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		ready int
		made  bool
	}{{-1, false}, {0, true}} {
		b, err := native.New(ctx, native.Config{Ready: c.ready})
		if err != nil {
			t.Skipf("native backend unavailable: %v", err)
		}
		if err := b.Prewarm(ctx); err != nil {
			t.Fatalf("Prewarm: %v", err)
		}
		for range 3 {
			// A warm Python run is the zygote: its command line says so.
			res, err := b.Run(ctx, sandbox.Spec{Language: "python", Code: "print(b'zygote' in open('/proc/self/cmdline', 'rb').read())\n"})
			if err != nil || res.Status != sandbox.StatusOK || res.Stdout != "True\n" {
				t.Fatalf("Ready %d: %s %v %q, want a run forked from the zygote", c.ready, describeResult(res), err, res.Stdout)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.made && native.ReadyMade(b) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if made := native.ReadyMade(b); (made > 0) != c.made {
			t.Errorf("Ready %d: %d ready runs made", c.ready, made)
		}
		b.Close()
	}
}

// jsReady waits until b has a JavaScript ready run waiting, asking for them first
// with a run that goes the usual way when none is kept yet.
func jsReady(t *testing.T, b *native.Backend) {
	t.Helper()
	if native.JSReady(b).Waiting == 0 {
		if _, err := b.Run(context.Background(), sandbox.Spec{Language: "javascript", Code: "\n"}); err != nil {
			t.Fatal(err)
		}
	}
	// On a loaded machine a node start can take longer than a test's readyIdle, and
	// one made after the pool was given up is closed: want them as JavaScript runs
	// coming would, until one waits.
	want := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if native.JSReady(b).Waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no JavaScript ready run was made in 30 s")
		}
		if time.Since(want) > 250*time.Millisecond {
			native.WantJS(b)
			want = time.Now()
		}
	}
}

// runJSReady runs spec, which must take a JavaScript ready run, and returns its result.
func runJSReady(t *testing.T, b *native.Backend, spec sandbox.Spec) *sandbox.Result {
	t.Helper()
	jsReady(t, b)
	before := native.JSReady(b).Taken
	res, err := b.Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if after := native.JSReady(b).Taken; after != before+1 {
		t.Fatalf("the run took no JavaScript ready run (%d taken before, %d after)", before, after)
	}
	return res
}

// jsLeakSet leaves behind what a Node program can: globals, prototypes, files in
// every writable place, environment, a detached process, timers, a worker.
const jsLeakSet = `
const fs = require('fs'), cp = require('child_process');
globalThis.LEAK = 1; Object.prototype.leak = 1; require('path').LEAK = 1;
process.env.LEAK = '1';
for (const d of ['/work', '/tmp', '/dev/shm']) fs.writeFileSync(d + '/leak', 'x');
cp.spawn('/bin/sleep', ['60'], { detached: true, stdio: 'ignore' }).unref();
setTimeout(() => {}, 60000).unref();
setInterval(() => {}, 1000).unref();
new (require('worker_threads').Worker)('setInterval(() => {}, 1000)', { eval: true }).unref();
process.on('exit', () => {});
console.log(process.pid);
`

// jsLeakCheck prints what it finds of jsLeakSet's run; a clean run prints "clean".
const jsLeakCheck = `
const fs = require('fs');
const found = [];
if (globalThis.LEAK || ({}).leak || require('path').LEAK) found.push('globals');
if (process.env.LEAK || fs.readFileSync('/proc/self/environ', 'latin1').includes('LEAK')) found.push('env');
for (const d of ['/work', '/tmp', '/dev/shm']) if (fs.existsSync(d + '/leak')) found.push('file ' + d);
if (fs.readdirSync('/work').join() !== 'main.js') found.push('work ' + fs.readdirSync('/work'));
const procs = fs.readdirSync('/proc').filter(p => /^[0-9]+$/.test(p)).map(Number).sort((a, b) => a - b);
if (procs.join() !== [1, process.pid].join()) found.push('processes ' + procs);
if (process.listenerCount('exit') || process._getActiveHandles().length) found.push('handles');
if (process.execArgv.length || process.argv.join() !== [process.execPath, '/work/main.js', 'a'].join()) found.push('argv ' + process.execArgv + ' ' + process.argv);
if (Object.keys(require.cache).join() !== '/work/main.js') found.push('modules ' + Object.keys(require.cache));
console.log(found.join(' ') || 'clean');
`

// TestWarmJSRunsLeakNothing: a JavaScript run that takes a ready run sees nothing of
// the one before it, nor of the bootstrap that waited for it.
func TestWarmJSRunsLeakNothing(t *testing.T) {
	b := newWarmBackend(t)
	res := runJSReady(t, b, sandbox.Spec{Language: "javascript", Code: jsLeakSet})
	if res.Status != sandbox.StatusOK {
		t.Fatalf("%s: %s", describeResult(res), res.Stderr)
	}
	for range 2 {
		res := runJSReady(t, b, sandbox.Spec{Language: "javascript", Code: jsLeakCheck, Args: []string{"a"}})
		if res.Status != sandbox.StatusOK || strings.TrimSpace(res.Stdout) != "clean" {
			t.Errorf("after a run that left things behind: %s %q %q", describeResult(res), res.Stdout, res.Stderr)
		}
	}
}

// TestWarmJSMatchesCold: what a JavaScript run that takes a ready run did is what the
// same spec does in a box built for it, byte for byte: output, exit, verdict.
func TestWarmJSMatchesCold(t *testing.T) {
	warm, cold := newWarmBackend(t), newColdBackend(t)
	js := func(code string) sandbox.Spec { return sandbox.Spec{Language: "javascript", Code: code} }
	cases := map[string]sandbox.Spec{
		"ok":                 js("console.log(1, process.argv.slice(1), require.main === module, module.id);\nconsole.error('e');\n"),
		"stack":              js("function f() { return new Error('x').stack }\nconsole.log(f())\n"),
		"syntax_error":       js("const x = 1;\nconsole.log((\"a\";\n"),
		"syntax_error_end":   js("console.log((\"a\"\n"),
		"runtime_error":      js("const x = 1;\nthrow new TypeError(\"boom\");\n"),
		"nested_error":       js("function f() { null.x }\nfunction g() { f() }\ng()\n"),
		"throw_value":        js("throw 42\n"),
		"exit_code":          js("console.log('a');\nprocess.exit(3);\n"),
		"exit_code_property": js("process.exitCode = 5\n"),
		"unhandled":          js("Promise.reject(new RangeError('r'))\n"),
		"async_error":        js("async function f() { await null; throw new Error('late') }\nf()\n"),
		"timer_error":        js("setTimeout(() => { throw new Error('timer') }, 1)\n"),
		"signal":             js("process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 1000)\n"),
		"json_parse":         js("JSON.parse('{bad')\n"),
		"require_missing":    js("require('./nope')\n"),
		"order":              js("setTimeout(() => console.log('t'), 0); setImmediate(() => console.log('i'));\nprocess.nextTick(() => console.log('n')); Promise.resolve().then(() => console.log('p'))\n"),
		"descriptors": js("const fs = require('fs');\nconsole.log(fs.openSync('main.js'), fs.readdirSync('/proc/self/fd').map(f => f + ' ' +\n" +
			"  (() => { try { return fs.readlinkSync('/proc/self/fd/' + f).replace(/[0-9]+/g, 'N') } catch { return '-' } })()))\n"),
		"confined": js("const fs = require('fs');\n" +
			"console.log(fs.readFileSync('/proc/self/status', 'utf8').split('\\n').filter(l => /^(Cap|NoNewPrivs|Seccomp)/.test(l)).join('\\n'));\n" +
			"for (const f of ['/etc/x', '/usr/x', '/x', '/proc/1/environ']) { try { fs.writeFileSync(f, 'x'); console.log(f, 'written') } catch (e) { console.log(f, e.code) } }\n" +
			"console.log(process.getuid() >= 1000, require('os').getPriority(), fs.readFileSync('/proc/self/limits', 'utf8'))\n"),
		"worker": js("const { Worker } = require('worker_threads');\nconst w = new Worker('console.log(process.argv, process.execArgv); null.x', { eval: true });\n" +
			"w.on('error', e => { console.log(e.stack); process.exitCode = 2 })\n"),
		"esm": {Language: "javascript", CodeFile: "main.mjs",
			Code: "import { sep } from 'node:path';\nconsole.log(sep, import.meta.url, process.argv.slice(1));\nawait null;\nnull.f();\n"},
		"esm_syntax":     {Language: "javascript", CodeFile: "main.mjs", Code: "await 1;\nlet y = ;\n"},
		"cjs":            {Language: "javascript", CodeFile: "main.cjs", Code: "console.log(__filename);\nundefinedFunction();\n"},
		"package_type":   {Language: "javascript", Code: "console.log(typeof require)\n", Files: []sandbox.File{{Name: "package.json", Content: []byte(`{"type":"module"}`)}}},
		"files_and_args": {Language: "javascript", Code: "console.log(require('./lib/a.js'), process.argv.slice(2))\n", Args: []string{"x", "--y"}, Files: []sandbox.File{{Name: "lib/a.js", Content: []byte("module.exports = 7\n")}}},
	}
	names := slices.Sorted(maps.Keys(cases))
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			spec := cases[name]
			want, err := cold.Run(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			got := runJSReady(t, warm, spec)
			type view struct {
				Status           sandbox.Status
				ExitCode, Signal any
				Stdout, Stderr   string
				Diagnostic       any
			}
			v := func(r *sandbox.Result) view {
				return view{r.Status, r.ExitCode, r.Signal, r.Stdout, r.Stderr, r.Diagnostic}
			}
			if g, w := v(got), v(want); !reflect.DeepEqual(g, w) {
				t.Errorf("ready run:\n%+v\ncold:\n%+v", g, w)
			}
		})
	}
}

// TestWarmJSReadyGivenUp: JavaScript ready runs are made only once JavaScript runs
// come, and given up when none came for a while, and at Close, leaving nothing.
func TestWarmJSReadyGivenUp(t *testing.T) {
	defer native.SetReadyIdle(time.Second)()
	b := newWarmBackend(t)
	ctx := context.Background()
	for range 3 {
		if res, err := b.Run(ctx, sandbox.Spec{Language: "python", Code: "print(1)\n"}); err != nil || res.Status != sandbox.StatusOK {
			t.Fatalf("%s: %v", describeResult(res), err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if st := native.JSReady(b); st.Made != 0 {
		t.Fatalf("%d JavaScript ready runs made for Python runs", st.Made)
	}
	jsReady(t, b)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if native.JSReady(b).Waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("JavaScript ready runs kept 10 s after the last JavaScript run")
		}
	}
	if left, err := b.Leftovers(ctx); err != nil || len(left) > 0 {
		t.Errorf("after the JavaScript ready runs were given up: %v %v", left, err)
	}

	jsReady(t, b) // wanted again
	b.Close()
	if left, err := b.Leftovers(ctx); err != nil || len(left) > 0 {
		t.Errorf("after Close: %v %v", left, err)
	}
}

// TestWarmJSIneligible: a run that is not exactly node running a file as the
// language runs it, with what a ready node started with, never takes a JavaScript
// ready run, and runs as it would otherwise.
func TestWarmJSIneligible(t *testing.T) {
	b := newWarmBackend(t)
	code := "console.log(require('fs').readFileSync(0, 'utf8').length, process.env.X || '', process.execArgv.join(' '))\n"
	js := func(f func(*sandbox.Spec)) sandbox.Spec {
		s := sandbox.Spec{Language: "javascript", Code: code}
		f(&s)
		return s
	}
	cases := map[string]struct {
		spec sandbox.Spec
		want string
	}{
		"stdin":       {js(func(s *sandbox.Spec) { s.Stdin = []byte("abc") }), "3  \n"},
		"combined":    {js(func(s *sandbox.Spec) { s.Combined = true }), "0  \n"},
		"env":         {js(func(s *sandbox.Spec) { s.Env = map[string]string{"X": "y"} }), "0 y \n"},
		"less_memory": {js(func(s *sandbox.Spec) { s.Limits.Memory = 128 << 20 }), "0  \n"},
		"tmp_size":    {js(func(s *sandbox.Spec) { s.Limits.TmpSize = 1 << 20 }), "0  \n"},
		"node_option": {sandbox.Spec{Command: []string{"/usr/bin/node", "--no-warnings", "main.js"}, Env: map[string]string{"NO_COLOR": "1", "NODE_DISABLE_COLORS": "1"},
			Files: []sandbox.File{{Name: "main.js", Content: []byte(code)}}}, "0  --no-warnings\n"},
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		t.Run(name, func(t *testing.T) {
			c := cases[name]
			jsReady(t, b)
			before := native.JSReady(b).Taken
			res, err := b.Run(context.Background(), c.spec)
			if err != nil || res.Status != sandbox.StatusOK || res.Stdout != c.want {
				t.Fatalf("%s: %v %q %q, want stdout %q", describeResult(res), err, res.Stdout, res.Stderr, c.want)
			}
			if after := native.JSReady(b).Taken; after != before {
				t.Errorf("the run took a JavaScript ready run")
			}
		})
	}
}
