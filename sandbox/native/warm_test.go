package native_test

import (
	"context"
	"fmt"
	"os"
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
// shared memory, and a secret in its memory.
const leakSet = `
import builtins, json, os, signal, subprocess, sys, threading, time
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
print("ctypes" in sys.modules, " ".join(found) or "clean")
`

// TestWarmRunsLeakNothing: a forked run sees nothing of the run before it, in the
// same template (the uid of sequential runs is the same, so only the fork's isolation
// stands between them).
func TestWarmRunsLeakNothing(t *testing.T) {
	b := newWarmBackend(t)
	ctx := context.Background()
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
		if got := run(leakCheck); got != "True clean" {
			t.Errorf("after a run that left things behind: %q", got)
		}
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
