//go:build linux && (amd64 || arm64)

package seccomp_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/internal/seccomp"
	"github.com/runboxhq/runbox/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The helper "probe MODE NAME" runs probe NAME, after Install when MODE is "filtered",
// and prints its result on stdout: OK, the name of the errno it failed with, or
// "error: …". Filters are installed only in these children, never in the test binary.
func init() {
	testenv.Register("probe", func(args []string) int {
		if len(args) != 2 || (args[0] != "filtered" && args[0] != "baseline") || probes[args[1]] == nil {
			fmt.Fprintf(os.Stderr, "usage: probe filtered|baseline NAME, got %q\n", args)
			return 2
		}
		if before := beforeInstall[args[1]]; before != nil {
			before()
		}
		if args[0] == "filtered" {
			if err := seccomp.Install(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Println(result(probes[args[1]]()))
		return 0
	})
}

func result(err error) string {
	if err == nil {
		return "OK"
	}
	if errno, ok := errors.AsType[unix.Errno](err); ok {
		return unix.ErrnoName(errno)
	}
	return "error: " + err.Error()
}

// probes make one system call, or run a workload, that the filter must deny or allow.
// A probe that the filter should deny fails harmlessly in the kernel without the filter
// (bad flags, a bad fd, a NULL pointer), so that running it unfiltered is safe and tells
// the filter's errno from the kernel's.
var probes = map[string]func() error{
	"unshare-newuser": func() error { return unix.Unshare(unix.CLONE_NEWUSER) },
	"setns":           func() error { return unix.Setns(-1, 0) },
	"clone-newns":     cloneFailing(unix.CLONE_NEWNS),
	"clone-newuts":    cloneFailing(unix.CLONE_NEWUTS),
	"clone-newipc":    cloneFailing(unix.CLONE_NEWIPC),
	"clone-newuser":   cloneFailing(unix.CLONE_NEWUSER),
	"clone-newpid":    cloneFailing(unix.CLONE_NEWPID),
	"clone-newnet":    cloneFailing(unix.CLONE_NEWNET),
	"clone-newcgroup": cloneFailing(unix.CLONE_NEWCGROUP),
	"clone-plain":     cloneFailing(0),
	"clone3":          func() error { return rawErr(unix.SYS_CLONE3, 0, 0, 0) },
	// A process that is not traced answers PEEKDATA with ESRCH.
	"ptrace":           func() error { return rawErr(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, uintptr(os.Getppid()), 0) },
	"process_vm_readv": func() error { return rawErr(unix.SYS_PROCESS_VM_READV, uintptr(os.Getpid()), 0, 0) },
	"keyctl": func() error {
		_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
		return err
	},
	"add_key":         func() error { return rawErr(unix.SYS_ADD_KEY, 0, 0, 0) },
	"request_key":     func() error { return rawErr(unix.SYS_REQUEST_KEY, 0, 0, 0) },
	"bpf":             func() error { return rawErr(unix.SYS_BPF, 0xffff, 0, 0) },
	"perf_event_open": func() error { return rawErr(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0)) },
	"io_uring_setup":  func() error { return rawErr(unix.SYS_IO_URING_SETUP, 1, 0, 0) },
	"mount":           func() error { return unix.Mount("none", "/nonexistent/runbox-seccomp", "tmpfs", 0, "") },
	"umount2":         func() error { return unix.Unmount("/nonexistent/runbox-seccomp", 0) },
	// Flag 0x2 is invalid.
	"userfaultfd":                   func() error { return rawErr(unix.SYS_USERFAULTFD, 0x2, 0, 0) },
	"personality-query":             personality(0xffffffff),
	"personality-linux":             personality(0),
	"personality-addr-no-randomize": personality(0x0040000),
	"personality-read-implies-exec": personality(0x0400000),
	"socket-unix":                   socket(unix.AF_UNIX, unix.SOCK_STREAM, 0),
	"socket-inet-stream":            socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0),
	"socket-inet-dgram":             socket(unix.AF_INET, unix.SOCK_DGRAM, 0),
	"socket-inet6-stream":           socket(unix.AF_INET6, unix.SOCK_STREAM, 0),
	"socket-inet-raw":               socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP),
	"socket-inet6-raw":              socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6),
	"socket-inet-packet":            socket(unix.AF_INET, unix.SOCK_PACKET, 0),
	"socket-netlink":                socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE),
	"socket-packet":                 socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0),
	"socket-vsock":                  socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0),
	"socketpair-unix": func() error {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
		return err
	},
	"socketpair-netlink": func() error {
		_, err := unix.Socketpair(unix.AF_NETLINK, unix.SOCK_RAW, 0)
		return err
	},
	// On fd -1: the filter answers before the kernel looks at the fd.
	"ioctl-tiocsti":      func() error { return rawErr(unix.SYS_IOCTL, ^uintptr(0), unix.TIOCSTI, 0) },
	"ioctl-tiocsti-high": func() error { return rawErr(unix.SYS_IOCTL, ^uintptr(0), 1<<32|unix.TIOCSTI, 0) },
	"ioctl-tioclinux":    func() error { return rawErr(unix.SYS_IOCTL, ^uintptr(0), unix.TIOCLINUX, 0) },
	"ioctl-tcgets":       func() error { return rawErr(unix.SYS_IOCTL, ^uintptr(0), unix.TCGETS, 0) },
	"flock":              onTempFile(func(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) }),
	"fcntl-setlk":        fcntlLock(unix.F_SETLK),
	"fcntl-setlkw":       fcntlLock(unix.F_SETLKW),
	"fcntl-ofd-setlk":    fcntlLock(unix.F_OFD_SETLK),
	"fcntl-getlk":        fcntlLock(unix.F_GETLK),
	"x32-getpid":         func() error { return rawErr(0x40000000|unix.SYS_GETPID, 0, 0, 0) },
	"fork-exec":          func() error { return exec.Command("/bin/true").Run() },
	"threads":            threads,
	"tsync":              tsync,
	"python":             python,
	"node":               node,
}

// beforeInstall prepares probes that need something from before Install.
var beforeInstall = map[string]func(){"tsync": pinThread}

func rawErr(nr, a1, a2, a3 uintptr) error {
	if _, _, errno := unix.RawSyscall(nr, a1, a2, a3); errno != 0 {
		return errno
	}
	return nil
}

// cloneFailing calls clone with flags and CLONE_THREAD, which the kernel rejects with
// EINVAL without CLONE_SIGHAND: the call can never create a process, and it shows
// whether the filter stopped it first.
func cloneFailing(flags uintptr) func() error {
	return func() error { return rawErr(unix.SYS_CLONE, flags|unix.CLONE_THREAD, 0, 0) }
}

func personality(persona uintptr) func() error {
	return func() error { return rawErr(unix.SYS_PERSONALITY, persona, 0, 0) }
}

func socket(domain, typ, proto int) func() error {
	return func() error {
		fd, err := unix.Socket(domain, typ, proto)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
}

func onTempFile(f func(fd int) error) func() error {
	return func() error {
		file, err := os.CreateTemp("", "runbox-seccomp-")
		if err != nil {
			return fmt.Errorf("create temp file: %v", err)
		}
		defer os.Remove(file.Name())
		defer file.Close()
		return f(int(file.Fd()))
	}
}

func fcntlLock(cmd int) func() error {
	return onTempFile(func(fd int) error {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
		return unix.FcntlFlock(uintptr(fd), cmd, &lk)
	})
}

// threads starts OS threads after Install and checks that each runs under the filter.
func threads() error {
	const n = 16
	var (
		ready, done sync.WaitGroup
		mu          sync.Mutex
		tids        = make(map[int]bool)
		errs        []error
	)
	ready.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			err := checkThread("/proc/thread-self/status")
			mu.Lock()
			tids[unix.Gettid()] = true
			errs = append(errs, err)
			mu.Unlock()
			// Hold the thread until all exist, so that each goroutine has its own.
			ready.Done()
			ready.Wait()
		}()
	}
	done.Wait()
	if len(tids) != n {
		return fmt.Errorf("%d goroutines locked to threads ran on %d threads", n, len(tids))
	}
	return errors.Join(errs...)
}

// checkThread checks the status file of a thread for no_new_privs and a seccomp filter.
func checkThread(status string) error {
	b, err := os.ReadFile(status)
	if err != nil {
		return err
	}
	for _, want := range []string{"NoNewPrivs:\t1\n", "Seccomp:\t2\n"} {
		if !bytes.Contains(b, []byte(want)) {
			return fmt.Errorf("%s lacks %q", status, want)
		}
	}
	return nil
}

var pinned = make(chan chan error)

// pinThread parks a goroutine on its own OS thread before Install; tsync then asks that
// thread for a system call that the filter denies.
func pinThread() {
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(started)
		reply := <-pinned
		reply <- unix.Unshare(unix.CLONE_NEWUSER)
	}()
	<-started
}

// tsync checks that Install reached every thread, the pinned one included.
func tsync() error {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) < 2 {
		return fmt.Errorf("want several threads, found %q (%v)", tasks, err)
	}
	for _, status := range tasks {
		if err := checkThread(status); err != nil {
			return fmt.Errorf("%w (of %d threads)", err, len(tasks))
		}
	}
	reply := make(chan error)
	pinned <- reply
	return <-reply
}

// interpreterEnv is the environment of the interpreters that python and node run.
var interpreterEnv = []string{"PATH=/usr/bin:/bin"}

func runInterpreter(argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = interpreterEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", argv[0], err, out)
	}
	if string(out) != "ok\n" {
		return fmt.Errorf("%s printed %q, want %q", argv[0], out, "ok\n")
	}
	return nil
}

const pythonScript = `
import asyncio, concurrent.futures, errno, fcntl, os, socket, subprocess, tempfile, threading

results = []
workers = [threading.Thread(target=results.append, args=(i,)) for i in range(8)]
for w in workers: w.start()
for w in workers: w.join()
assert sorted(results) == list(range(8)), results
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    assert list(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]

assert subprocess.run(["/bin/true"]).returncode == 0
assert subprocess.run(["/bin/sh", "-c", "exit 3"]).returncode == 3
pid = os.fork()
if pid == 0:
    os._exit(7)
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7

a, b = socket.socketpair()
a.sendall(b"x")
assert b.recv(1) == b"x"
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
    raise SystemExit("netlink socket created")
except OSError as e:
    assert e.errno == errno.EAFNOSUPPORT, e

async def main():
    await asyncio.sleep(0)
    return await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2])
assert asyncio.run(main()) == 3

with tempfile.TemporaryFile() as f:
    f.write(b"data")
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        raise SystemExit("flock succeeded")
    except OSError as e:
        assert e.errno == errno.ENOLCK, e
print("ok")
`

func python() error { return runInterpreter("/usr/bin/python3", "-c", pythonScript) }

const nodeScript = `
const assert = require('assert');
const cp = require('child_process');
const crypto = require('crypto');
const dns = require('dns');
const fs = require('fs');
const { Worker } = require('worker_threads');

assert.strictEqual(cp.spawnSync('/bin/true').status, 0);
assert.strictEqual(cp.execFileSync('/bin/sh', ['-c', 'echo hi']).toString(), 'hi\n');
assert.ok(fs.readFileSync('/proc/self/status', 'utf8').includes('Seccomp:\t2'));

async function main() {
  await fs.promises.readFile('/proc/self/status');
  assert.strictEqual(crypto.randomBytes(8).length, 8);
  await new Promise((resolve, reject) => dns.lookup('localhost', (err) => err ? reject(err) : resolve()));
  const answer = await new Promise((resolve, reject) => {
    const w = new Worker('require("worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
    w.on('message', resolve);
    w.on('error', reject);
  });
  assert.strictEqual(answer, 42);
  console.log('ok');
}
main().catch((err) => { console.error(err); process.exit(1); });
`

func node() error { return runInterpreter("/usr/bin/node", "-e", nodeScript) }

func probe(t *testing.T, mode, name string) string {
	t.Helper()
	argv, env := testenv.Command(t, "probe", mode, name)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe %s %s: %v\n%s", mode, name, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// installTests are the probes that TestInstall runs and the results it wants.
var installTests = []struct {
	probe string
	want  string
	// byFilter says that want comes from the filter: the probe is run without it
	// too, and must give another result there, or it proves nothing on this host.
	byFilter bool
	needs    string // a file the probe needs
	goarch   string // the only architecture of the probe, if any
}{
	{probe: "unshare-newuser", want: "EPERM", byFilter: true},
	{probe: "setns", want: "EPERM", byFilter: true},
	{probe: "clone-newns", want: "EPERM", byFilter: true},
	{probe: "clone-newuts", want: "EPERM", byFilter: true},
	{probe: "clone-newipc", want: "EPERM", byFilter: true},
	{probe: "clone-newuser", want: "EPERM", byFilter: true},
	{probe: "clone-newpid", want: "EPERM", byFilter: true},
	{probe: "clone-newnet", want: "EPERM", byFilter: true},
	{probe: "clone-newcgroup", want: "EPERM", byFilter: true},
	{probe: "clone-plain", want: "EINVAL"}, // the kernel's answer: clone passed the filter
	{probe: "clone3", want: "ENOSYS", byFilter: true},
	{probe: "ptrace", want: "EPERM", byFilter: true},
	{probe: "process_vm_readv", want: "EPERM", byFilter: true},
	{probe: "keyctl", want: "EPERM", byFilter: true},
	{probe: "add_key", want: "EPERM", byFilter: true},
	{probe: "request_key", want: "EPERM", byFilter: true},
	{probe: "bpf", want: "EPERM", byFilter: true},
	{probe: "perf_event_open", want: "EPERM", byFilter: true},
	{probe: "io_uring_setup", want: "EPERM", byFilter: true},
	{probe: "mount", want: "EPERM", byFilter: true},
	{probe: "umount2", want: "EPERM", byFilter: true},
	{probe: "userfaultfd", want: "EPERM", byFilter: true},
	{probe: "personality-query", want: "OK"},
	{probe: "personality-linux", want: "OK"},
	{probe: "personality-addr-no-randomize", want: "EPERM", byFilter: true},
	{probe: "personality-read-implies-exec", want: "EPERM", byFilter: true},
	{probe: "socket-unix", want: "OK"},
	{probe: "socket-inet-stream", want: "OK"},
	{probe: "socket-inet-dgram", want: "OK"},
	{probe: "socket-inet6-stream", want: "OK"},
	{probe: "socket-inet-raw", want: "EPERM", byFilter: true},
	{probe: "socket-inet6-raw", want: "EPERM", byFilter: true},
	{probe: "socket-inet-packet", want: "EPERM", byFilter: true},
	{probe: "socket-netlink", want: "EAFNOSUPPORT", byFilter: true},
	{probe: "socket-packet", want: "EAFNOSUPPORT", byFilter: true},
	{probe: "socket-vsock", want: "EAFNOSUPPORT", byFilter: true},
	{probe: "socketpair-unix", want: "OK"},
	{probe: "socketpair-netlink", want: "EAFNOSUPPORT", byFilter: true},
	{probe: "ioctl-tiocsti", want: "EPERM", byFilter: true},
	{probe: "ioctl-tiocsti-high", want: "EPERM", byFilter: true},
	{probe: "ioctl-tioclinux", want: "EPERM", byFilter: true},
	{probe: "ioctl-tcgets", want: "EBADF"},
	{probe: "flock", want: "ENOLCK", byFilter: true},
	{probe: "fcntl-setlk", want: "ENOLCK", byFilter: true},
	{probe: "fcntl-setlkw", want: "ENOLCK", byFilter: true},
	{probe: "fcntl-ofd-setlk", want: "ENOLCK", byFilter: true},
	{probe: "fcntl-getlk", want: "OK"},
	{probe: "x32-getpid", want: "ENOSYS", byFilter: true, goarch: "amd64"},
	{probe: "fork-exec", want: "OK", needs: "/bin/true"},
	{probe: "threads", want: "OK"},
	{probe: "tsync", want: "EPERM", byFilter: true},
	{probe: "python", want: "OK", needs: "/usr/bin/python3"},
	{probe: "node", want: "OK", needs: "/usr/bin/node"},
}

func TestInstall(t *testing.T) {
	for _, tt := range installTests {
		t.Run(tt.probe, func(t *testing.T) {
			t.Parallel()
			if tt.goarch != "" && tt.goarch != runtime.GOARCH {
				t.Skipf("%s only", tt.goarch)
			}
			if tt.needs != "" {
				if _, err := os.Stat(tt.needs); err != nil {
					t.Skip(err)
				}
			}
			if tt.byFilter {
				if base := probe(t, "baseline", tt.probe); base == tt.want {
					t.Skipf("without the filter the probe gives %s too on this host; it cannot tell", base)
				}
			}
			if got := probe(t, "filtered", tt.probe); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestProbesAreListed keeps the probes and the table of TestInstall in step.
func TestProbesAreListed(t *testing.T) {
	listed := make(map[string]bool)
	for _, tt := range installTests {
		if probes[tt.probe] == nil {
			t.Errorf("TestInstall runs unknown probe %q", tt.probe)
		}
		listed[tt.probe] = true
	}
	for name := range probes {
		if !listed[name] {
			t.Errorf("probe %q is not in TestInstall", name)
		}
	}
}
