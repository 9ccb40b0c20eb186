package sandboxtest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

// kernelDenied are the reasons the seccomp filter (or a missing capability) gives.
var kernelDenied = []string{"EPERM", "EACCES", "ENOSYS"}

func (s *suite) privilegeCases() []*hostileCase {
	g7 := "sbt-" + s.marker + "-g7"
	return []*hostileCase{
		{
			id: "G1", name: "no_privilege_gain",
			code: progs(`import subprocess
print("== status")
print(open("/proc/self/status").read())
print("== mountinfo")
print(open("/proc/self/mountinfo").read())
print("== attempts", flush=True)
attempt("setuid 0", os.setuid, 0)
attempt("setgid 0", os.setgid, 0)
attempt("setgroups 0", os.setgroups, [0])
attempt("su root", lambda: subprocess.run(["su", "root", "-c", "true"], stdin=subprocess.DEVNULL,
                                         capture_output=True, timeout=5, check=True))
`, `console.log('== status');
console.log(fs.readFileSync('/proc/self/status', 'utf8'));
console.log('== mountinfo');
console.log(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
console.log('== attempts');
attempt('setuid 0', () => process.setuid(0));
attempt('setgid 0', () => process.setgid(0));
attempt('setgroups 0', () => process.setgroups([0]));
attempt('su root', () => require('child_process').execFileSync('su', ['root', '-c', 'true'], { stdio: 'ignore', timeout: 5000 }));
`, `echo "== status"
cat /proc/self/status
echo "== mountinfo"
cat /proc/self/mountinfo
echo "== attempts"
attempt "su root" 'su root -c true </dev/null'
attempt "mount tmpfs" 'mount -t tmpfs none /tmp'
`),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				sec := sections(o.Stdout)
				status := sec["status"]
				for key, want := range map[string]string{"NoNewPrivs": "1", "CapEff": "0000000000000000",
					"CapPrm": "0000000000000000", "CapAmb": "0000000000000000", "Seccomp": "2"} {
					if got := statusField(status, key); got != want {
						t.Errorf("/proc/self/status %s: %q, want %q", key, got, want)
					}
				}
				// The uid is the backend's choice (1000 in a native box's user namespace,
				// one of its own per Docker container); root it must not be, nor change.
				for _, key := range []string{"Uid", "Gid"} {
					ids := strings.Fields(statusField(status, key))
					if len(ids) != 4 || ids[0] == "0" || slices.ContainsFunc(ids, func(id string) bool { return id != ids[0] }) {
						t.Errorf("%ss (real, effective, saved, fs) %q, want one id, not root's", key, ids)
					}
				}
				for _, dir := range []string{sandbox.WorkDir, "/tmp", "/dev/shm"} {
					mp, opts := mountOf(sec["mountinfo"], dir)
					if !slices.Contains(strings.Split(opts, ","), "nosuid") {
						t.Errorf("%s is on mount %q with options %q, want nosuid", dir, mp, opts)
					}
				}
				whats := map[string][]string{
					python:     {"setuid 0", "setgid 0", "setgroups 0", "su root"},
					javascript: {"setuid 0", "setgid 0", "setgroups 0", "su root"},
					bash:       {"su root", "mount tmpfs"},
				}[o.variant]
				wantBlocked(t, &outcome{Result: &sandbox.Result{Stdout: sec["attempts"]}}, whats)
			},
		},
		{
			id: "G2", name: "ptrace", amd64: true,
			// Only Python can make the calls. A sibling of the same uid is the
			// easiest target: only the seccomp filter stops it.
			code: progs(pyCtypes+`import signal, time


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


sibling = os.fork()
if sibling == 0:
    time.sleep(30)
    os._exit(0)
attempt("ptrace attach init", sys_call, 101, 16, 1, 0, 0)
attempt("ptrace attach sibling", sys_call, 101, 16, sibling, 0, 0)
attempt("ptrace seize sibling", sys_call, 101, 0x4206, sibling, 0, 0)
buf = ctypes.create_string_buffer(8)
local, remote = iovec(ctypes.addressof(buf), 8), iovec(0x10000, 8)
attempt("process_vm_readv init", sys_call, 310, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
attempt("process_vm_readv sibling", sys_call, 310, sibling, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
attempt("open /proc/1/mem", lambda: open("/proc/1/mem", "rb"))
os.kill(sibling, signal.SIGKILL)
os.waitpid(sibling, 0)
tracee = os.fork()
if tracee == 0:
    try:
        sys_call(101, 0, 0, 0, 0)
    except OSError as e:
        print("ptrace traceme BLOCKED " + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    else:
        escaped("ptrace traceme")
    os._exit(0)
os.waitpid(tracee, 0)
`, "", ""),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				// process_vm_readv of an address nobody mapped fails with EFAULT
				// only once access is granted: EFAULT is not denial.
				wantBlocked(t, o, []string{"ptrace attach init", "ptrace attach sibling", "ptrace seize sibling",
					"process_vm_readv init", "process_vm_readv sibling", "ptrace traceme"}, "EPERM", "EACCES", "ESRCH", "ENOSYS")
				wantBlocked(t, o, []string{"open /proc/1/mem"}, denied...)
			},
		},
		{
			id: "G3", name: "kernel_surface", amd64: true,
			// Each call has arguments that would succeed for an unprivileged process
			// without the filter where the kernel allows it (user namespaces, keyrings,
			// perf events of its own, user-mode userfaultfd). Node has no way to make
			// these calls.
			code: progs(pyCtypes+`import struct
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x20000, 0x40000000
attempt("unshare user", sys_call, 272, CLONE_NEWUSER)
attempt("unshare mount", sys_call, 272, CLONE_NEWNS)
attempt("unshare net", sys_call, 272, CLONE_NEWNET)
try:
    pid = sys_call(56, CLONE_NEWUSER | 17, 0, 0, 0, 0)
except OSError as e:
    print("clone newuser BLOCKED " + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
else:
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    escaped("clone newuser")
attempt("setns", lambda: sys_call(308, os.open("/proc/self/ns/net", os.O_RDONLY), 0))
attempt("mount", sys_call, 165, b"none", b"/tmp", b"tmpfs", 0, None)
attempt("keyctl join", sys_call, 250, 1, None)
attempt("add_key", sys_call, 248, b"user", b"sbt", b"x", 1, -3)
attr = ctypes.create_string_buffer(struct.pack("IIII", 2, 4, 4, 1) + bytes(56))
attempt("bpf map create", sys_call, 321, 0, attr, 72)
perf = ctypes.create_string_buffer(struct.pack("IIQQQQQ", 1, 128, 0, 0, 0, 0, 0x61) + bytes(80))
attempt("perf_event_open", sys_call, 298, perf, 0, -1, -1, 0)
attempt("userfaultfd", sys_call, 323, 0o2000000 | 1)
attempt("kexec_load", sys_call, 246, 0, 0, None, 0)
attempt("init_module", sys_call, 175, None, 0, b"")
attempt("finit_module", lambda: sys_call(313, os.open("/dev/null", os.O_RDONLY), b"", 0))
attempt("delete_module", sys_call, 176, b"sbt", 0)
`, "", `attempt "unshare user" 'unshare --user true'
attempt "unshare map root" 'unshare --map-root-user true'
attempt "unshare net" 'unshare --net true'
attempt "mount tmpfs" 'mount -t tmpfs none /tmp'
`),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				if o.variant == bash {
					wantBlocked(t, o, []string{"unshare user", "unshare map root", "unshare net", "mount tmpfs"})
					return
				}
				wantBlocked(t, o, []string{"unshare user", "unshare mount", "unshare net", "clone newuser", "setns", "mount",
					"keyctl join", "add_key", "bpf map create", "perf_event_open", "userfaultfd", "kexec_load",
					"init_module", "finit_module", "delete_module"}, kernelDenied...)
			},
		},
		{
			id: "G4", name: "no_controlling_tty",
			// TIOCSTI needs a terminal, and a box has none: what is checked here is
			// that it has none to inject into. Injecting through a tty handed to the
			// box is the native backend's own pty test.
			code: progs(`import fcntl, termios
stat = open("/proc/self/stat").read()
print("tty_nr=" + stat.rsplit(")", 1)[1].split()[4])
attempt("open /dev/tty", lambda: open("/dev/tty", "rb"))
for fd in (0, 1, 2):
    attempt("TIOCSTI fd %d" % fd, fcntl.ioctl, fd, termios.TIOCSTI, b"x")
`, `const stat = fs.readFileSync('/proc/self/stat', 'utf8');
console.log('tty_nr=' + stat.slice(stat.lastIndexOf(')') + 2).split(' ')[4]);
attempt('open /dev/tty', () => fs.openSync('/dev/tty', 'r'));
`, `read -r stat </proc/$$/stat
set -- ${stat##*) }
echo "tty_nr=$5"
attempt "open /dev/tty" ': </dev/tty'
`),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				if tty := intField(t, o.Stdout, "tty_nr"); tty != 0 {
					t.Errorf("the program has controlling terminal %d, want none", tty)
				}
				wantBlocked(t, o, []string{"open /dev/tty"}, "ENXIO", "ENOENT", "EACCES")
				if o.variant == python {
					wantBlocked(t, o, []string{"TIOCSTI fd 0", "TIOCSTI fd 1", "TIOCSTI fd 2"}, "ENOTTY", "EPERM", "EIO", "EBADF")
				}
			},
		},
		{
			id: "G5", name: "proc_self_tricks",
			// The box's init may be the host's own binary re-executed (the runc
			// pattern): writing through /proc/1/exe would change it. Inherited
			// descriptors would be ways out.
			code: progs(`attempt("write /proc/self/exe", lambda: open("/proc/self/exe", "r+b"))
attempt("write /proc/1/exe", lambda: open("/proc/1/exe", "r+b"))
attempt("list /proc/1/root", os.listdir, "/proc/1/root/")
attempt("list /proc/1/cwd", os.listdir, "/proc/1/cwd/")
print("== fds")
for fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
    try:
        print("%d -> %s" % (fd, os.readlink("/proc/self/fd/%d" % fd)))
    except OSError:
        pass
`, `attempt('write /proc/self/exe', () => fs.openSync('/proc/self/exe', 'r+'));
attempt('write /proc/1/exe', () => fs.openSync('/proc/1/exe', 'r+'));
attempt('list /proc/1/root', () => fs.readdirSync('/proc/1/root/'));
attempt('list /proc/1/cwd', () => fs.readdirSync('/proc/1/cwd/'));
`, `attempt "write /proc/self/exe" ': 1<>/proc/self/exe'
attempt "write /proc/1/exe" ': 1<>/proc/1/exe'
attempt "list /proc/1/root" 'ls /proc/1/root/'
attempt "list /proc/1/cwd" 'ls /proc/1/cwd/'
echo "== fds"
ls -l /proc/$$/fd
`),
			host: func(t *testing.T) func(t *testing.T) { return unchanged(t, s.exe) },
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantBlocked(t, o, []string{"write /proc/self/exe", "write /proc/1/exe"})
				wantBlocked(t, o, []string{"list /proc/1/root", "list /proc/1/cwd"}, denied...)
				if o.variant == javascript {
					return // Node holds descriptors of its own (epoll, eventfd, pipes)
				}
				fds := fdLine.FindAllStringSubmatch(sections(o.Stdout)["fds"], -1)
				if len(fds) < 3 {
					t.Errorf("the program listed %d descriptors, want 0, 1 and 2 at least:\n%s", len(fds), o.Stdout)
				}
				for _, m := range fds {
					fd, target := m[1], m[2]
					switch {
					case fd == "0" || fd == "1" || fd == "2":
					case o.variant == bash && fd == "255" && target == sandbox.WorkDir+"/main.sh":
						// Bash reads its script through 255.
					default:
						t.Errorf("the program inherited descriptor %s → %s", fd, target)
					}
				}
			},
		},
		{
			id: "G6", name: "process_view",
			code: progs(`import socket
print("self=%d" % os.getpid())
print("ppid=%d" % os.getppid())
print("pids=" + ",".join(sorted((d for d in os.listdir("/proc") if d.isdigit()), key=int)))
print("hostname=" + socket.gethostname())
`, `console.log('self=' + process.pid);
console.log('ppid=' + process.ppid);
console.log('pids=' + fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).sort((a, b) => a - b).join(','));
console.log('hostname=' + require('os').hostname());
`, `echo "self=$$"
echo "ppid=$PPID"
pids=
for d in /proc/[0-9]*; do pids="$pids,${d#/proc/}"; done
echo "pids=${pids#,}"
echo "hostname=$HOSTNAME"
`),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				self, _ := field(o.Stdout, "self")
				pids, _ := field(o.Stdout, "pids")
				got, want := sortNumeric(strings.Split(pids, ",")), sortNumeric([]string{"1", self})
				if !slices.Equal(got, want) {
					t.Errorf("the box shows processes %v, want only its init and the program: %v", got, want)
				}
				if p := intField(t, o.Stdout, "ppid"); p != 1 {
					t.Errorf("the program's parent is pid %d, want the box's init, pid 1", p)
				}
				if h, _ := field(o.Stdout, "hostname"); h == "" || h == s.hostname {
					t.Errorf("hostname %q in the box, want one that is not the host's (%q)", h, s.hostname)
				}
			},
		},
		{
			id: "G7", name: "no_channel_between_runs", variants: []string{python},
			multi: func(t *testing.T, _ string) { s.noChannelBetweenRuns(t, g7) },
		},
	}
}

// g7Prog is both runs of G7: "hold" sets up every channel it can and keeps them 4 s;
// "probe" looks for them. Locks are denied to both (ENOLCK).
const g7Prog = pyCtypes + `import fcntl, socket, time
KEY = 0x5B7E57
libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
libc.msgget.argtypes = [ctypes.c_int, ctypes.c_int]


def check(r):
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


passwd = open("/etc/passwd")
attempt("flock /etc/passwd", fcntl.flock, passwd, fcntl.LOCK_EX | fcntl.LOCK_NB)
attempt("fcntl lock /work", lambda: fcntl.lockf(open("/work/lock", "w"), fcntl.LOCK_EX | fcntl.LOCK_NB))
attempt("keyctl user keyring", sys_call, 250, 0, -4, 1)
if sys.argv[1] == "hold":
    check(libc.shmget(KEY, 4096, 0o1000 | 0o2000 | 0o666))
    print("shm created", flush=True)
    check(libc.msgget(KEY, 0o1000 | 0o2000 | 0o666))
    print("msg queue created", flush=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0@@NAME@@")
    listener.listen()
    print("abstract listening", flush=True)
    time.sleep(4)
else:
    attempt("shm", lambda: check(libc.shmget(KEY, 0, 0)))
    attempt("msg queue", lambda: check(libc.msgget(KEY, 0)))

    def connect():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect("\0@@NAME@@")

    attempt("abstract socket", connect)
`

// noChannelBetweenRuns (G7) starts a run that holds shared memory, a message queue, an
// abstract socket and (if it could) locks, and probes for them from a second run while
// the first still holds them.
func (s *suite) noChannelBetweenRuns(t *testing.T, name string) {
	code := strings.ReplaceAll(pyPrelude+g7Prog, "@@NAME@@", name)
	spec := func(role string) sandbox.Spec {
		return sandbox.Spec{Language: python, Code: code, Args: []string{role}, Limits: sandbox.Limits{WallTime: defaultWall}}
	}
	var (
		hold     *outcome
		holdDone time.Time
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		hold = s.exec(t.Context(), spec("hold"))
		holdDone = time.Now()
	})
	time.Sleep(time.Second)
	probe := s.exec(t.Context(), spec("probe"))
	probeDone := time.Now()
	wg.Wait()
	if !s.checkCommon(t, hold) || !s.checkCommon(t, probe) {
		t.FailNow()
	}
	wantExit(t, hold, sandbox.StatusOK, 0)
	wantExit(t, probe, sandbox.StatusOK, 0)
	for _, l := range []string{"shm created", "msg queue created", "abstract listening"} {
		wantStdoutLine(t, hold, l)
	}
	if !probeDone.Before(holdDone) {
		t.Errorf("the probe ended after the holder: the runs did not overlap, and the case proves nothing")
	}
	for _, o := range []*outcome{hold, probe} {
		wantBlocked(t, o, []string{"flock /etc/passwd", "fcntl lock /work"}, "ENOLCK")
		wantBlocked(t, o, []string{"keyctl user keyring"}, kernelDenied...)
	}
	wantBlocked(t, probe, []string{"shm", "msg queue"}, "ENOENT")
	// No such socket in the probe's network namespace (ECONNREFUSED), or one that
	// Landlock's scope keeps out of reach (EPERM) where runs share an empty network
	// namespace (native warm runs).
	wantBlocked(t, probe, []string{"abstract socket"}, "ECONNREFUSED", "EPERM")
}

var fdLine = regexp.MustCompile(`(?m)(\d+) -> (.*)$`)

// statusField returns the value of key in /proc/PID/status.
func statusField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// mountOf returns the mount point and per-mount options of the mount dir is on, from
// the text of /proc/PID/mountinfo.
func mountOf(mountinfo, dir string) (mountPoint, options string) {
	for _, l := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		mp := f[4]
		if (dir == mp || mp == "/" || strings.HasPrefix(dir, mp+"/")) && len(mp) >= len(mountPoint) {
			mountPoint, options = mp, f[5]
		}
	}
	return mountPoint, options
}

// sortNumeric sorts decimal numbers, such as pids, by value.
func sortNumeric(s []string) []string {
	slices.SortFunc(s, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return s
}
