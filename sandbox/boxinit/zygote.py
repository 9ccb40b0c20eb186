# The zygote of a warm native box: a Python interpreter, started once inside the box
# (its root, user and network namespaces built by the Go init, pid 1), that forks one
# child per run and never runs a run's code itself. See zygote_linux.go.
#
# Per run (a message on fd 3 carrying the run's config and files, its pipes and its
# cgroup's files), two processes:
#   G, pid 1 of new mount and pid namespaces: mounts the run's tmpfs, writes the input
#     files, forks H, reaps everything, and reports how H ended on the status pipe once
#     the namespace is empty; then unmounts the tmpfs and waits for another run;
#   H, the program: joins the run's cgroup and new ipc (and network, when asked)
#     namespaces, sets the rlimits, leaves the session, becomes the run's uid (which
#     drops every capability), sets no_new_privs, Landlock and the seccomp filter, then
#     runs the code (Python in this interpreter, already started) or execs the command.
#     H of a ready run does all that before its run is known, and waits for its config:
#     in this interpreter, or in the program it execs (a JavaScript ready run's node).
#
# A G serves one run after another: the zygote hands a run to an idle G when one
# waits, and clones a new one otherwise. A new process is slow here, and not for the
# kernel's work: each page it touches is mapped again for it (in a VM, a hypervisor
# exit per page), and a G cloned per run cost as much as its program. Nothing of a
# run is left in a G for the next: its processes are killed and reaped, its tmpfs
# unmounted, and its program had ipc and network namespaces of its own. A G that
# fails anything goes instead of waiting for another run.
#
# G is made with a bare clone(2), not os.fork: one process fewer than forking a child
# that unshares and forks again. The zygote has one thread and holds the GIL across
# the call (PyDLL), so the copy is consistent; glibc's cached thread id in G is the
# zygote's, which only raise() and pthread_kill() would use, and G calls neither.
#
# The policy (the seccomp program, the Landlock rules, the syscall numbers) is computed
# by the Go init and comes in argv[1] as JSON: nothing here decides what is allowed.
import base64
import atexit
import builtins
import _signal
import ctypes
import fcntl
import gc
import importlib.machinery
import itertools
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
import types

S = json.loads(sys.argv[1])
del sys.argv[1:]
NR = S["nr"]
libc = ctypes.CDLL(None, use_errno=True)
pylib = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL across the call: for clone, fork


def syscall_fn(dll, *argtypes):
    """syscall(2) for one system call, its arguments' C types fixed (the number's
    first): a call converts them in C and makes no ctypes object, so a run's process
    writes to fewer of the zygote's pages (each is copied into it at its first write)."""
    f = dll._FuncPtr(("syscall", dll))
    f.restype = ctypes.c_long
    f.argtypes = (ctypes.c_long,) + argtypes
    return f


c_long, c_ulong, c_void_p = ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p
CLONE = syscall_fn(pylib, c_ulong, c_void_p, c_void_p, c_void_p, c_ulong)
LANDLOCK_CREATE_RULESET = syscall_fn(libc, c_void_p, ctypes.c_size_t, ctypes.c_uint32)
LANDLOCK_ADD_RULE = syscall_fn(libc, ctypes.c_int, ctypes.c_int, c_void_p, ctypes.c_uint32)
LANDLOCK_RESTRICT_SELF = syscall_fn(libc, ctypes.c_int, ctypes.c_uint32)
SECCOMP = syscall_fn(libc, ctypes.c_uint, ctypes.c_uint, c_void_p)
libc.prctl.argtypes = (ctypes.c_int, c_ulong, c_ulong, c_ulong, c_ulong)
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, c_ulong, ctypes.c_char_p)
libc.mprotect.argtypes = libc.madvise.argtypes = (c_void_p, ctypes.c_size_t, ctypes.c_int)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
libc.unshare.argtypes = (ctypes.c_int,)

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x8000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_DUMPABLE = 38, 24, 4
SECCOMP_SET_MODE_FILTER = 1
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
# The signal numbers and dispositions as plain ints, set with _signal.signal: the
# signal module's wrapper turns what it returns into an enum (raising and catching a
# ValueError for a handler function), which touches pages of the interpreter's that
# a run's process would copy.
SIGINT, SIGPIPE, SIGXFSZ, SIGCHLD, SIGKILL = (int(s) for s in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGKILL))
SIG_DFL, SIG_IGN = int(signal.SIG_DFL), int(signal.SIG_IGN)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


FILTER = base64.b64decode(S["seccomp"])
FILTER_BUF = ctypes.create_string_buffer(FILTER, len(FILTER))
FPROG = SockFprog(len(FILTER) // 8, ctypes.cast(FILTER_BUF, ctypes.c_void_p))
FPROG_ADDR = ctypes.addressof(FPROG)
# struct landlock_path_beneath_attr, filled per rule; and the ruleset attributes with
# and without a loopback of the run's own (Landlock then leaves TCP alone).
LL_RULE = ctypes.create_string_buffer(12)
LL_RULE_ADDR = ctypes.addressof(LL_RULE)
LL_ATTRS = {}
if S.get("landlock"):
    ll = S["landlock"]
    for lo in (False, True):
        attr = struct.pack("<QQQ", ll["fs"], 0 if lo else ll["net"], ll["scoped"])[: ll["size"]]
        buf = ctypes.create_string_buffer(attr, len(attr))
        LL_ATTRS[lo] = (buf, ctypes.addressof(buf), len(attr))


class Failure(Exception):
    def __init__(self, stage, err):
        super().__init__(f"{err}")
        self.stage = stage


def check(stage, what, r):
    if r < 0:
        e = ctypes.get_errno()
        raise Failure(stage, f"{what}: {os.strerror(e)}")
    return r


def mount(src, target, fstype, flags, data):
    r = libc.mount(src.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None)
    check("mount", f"mount {fstype} on {target}", r)


def report(fd, st):
    os.write(fd, json.dumps(st).encode() + b"\n")


def read_config(data):
    """The config line, the files' contents and a stdin file (or None) from the bytes
    the host sent (boxinit.Config.Write)."""
    nl = data.index(b"\n")
    cfg = json.loads(data[:nl])
    at = nl + 1
    contents = []
    for spec in cfg.get("files") or []:
        b = data[at : at + spec["size"]]
        if len(b) != spec["size"]:
            raise Failure("config", f"read input file {spec['name']}: short")
        contents.append(b)
        at += spec["size"]
    stdin = None
    n = cfg.get("stdin_size", 0)
    if n:
        if len(data) - at != n:
            raise Failure("config", "read stdin: short")
        stdin = os.memfd_create("stdin", os.MFD_CLOEXEC)
        view = memoryview(data)[at:]
        while view:
            view = view[os.write(stdin, view) :]
        os.lseek(stdin, 0, os.SEEK_SET)
    return cfg, contents, stdin


def read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks)


def write_files(cfg, contents, uid):
    """Writes the input files under /work, owned by uid: as root before the program
    exists, or as the program's uid itself in a ready run (whose /work is its own)."""
    work = "/work"
    chown = os.chown if os.geteuid() == 0 else (lambda *a: None)
    fchown = os.fchown if os.geteuid() == 0 else (lambda *a: None)
    chown(work, uid, uid)
    for spec, data in zip(cfg.get("files") or [], contents):
        name = spec["name"]
        dst = os.path.normpath(os.path.join(work, name))
        if not dst.startswith(work + "/"):
            raise Failure("files", f"input file {name!r} leaves the work directory")
        d = work
        for part in os.path.dirname(name).split("/"):
            if part in ("", "."):
                continue
            d = os.path.join(d, part)
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                pass
            st = os.lstat(d)
            if (st.st_mode & 0o170000) != 0o040000:
                raise Failure("files", f"mkdir {d}: not a directory")
            chown(d, uid, uid)
        mode = 0o755 if spec.get("executable") else 0o644
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            fchown(fd, uid, uid)
        finally:
            os.close(fd)


def loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING).ljust(40, b"\0")
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, ifr)
    finally:
        s.close()


def ruleset(loopback):
    """A Landlock ruleset fd with the run's rules. It is made per run, once its file
    systems are mounted: a rule holds an inode, and one on a mount point does not
    reach the file system mounted there later."""
    if not LL_ATTRS:
        return -1
    _, addr, size = LL_ATTRS[loopback]
    rs = check("landlock", "create ruleset", LANDLOCK_CREATE_RULESET(NR["landlock_create_ruleset"], addr, size, 0))
    os.set_inheritable(rs, False)
    add = NR["landlock_add_rule"]
    for path, access in S["landlock"]["rules"]:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        struct.pack_into("=Qi", LL_RULE, 0, access, pfd)
        r = LANDLOCK_ADD_RULE(add, rs, 1, LL_RULE_ADDR, 0)
        os.close(pfd)
        check("landlock", f"rule for {path}", r)
    return rs


PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MADV_POPULATE_READ = 22


def map_code_into_forks():
    """Has fork(2) hand each child the zygote's page table entries of the
    interpreter's and its libraries' code and constants (their private read-only file
    mappings). The kernel leaves those of a mapping without anonymous memory out of a
    fork, for the child to fault them in: ~190 faults per run between G and H, each
    tens of microseconds in a VM. A mapping that has anonymous memory is copied, so
    each gets some: it is made writable for a moment and one byte of its first page is
    written back unchanged (that page becomes the zygote's private copy), it is made as
    it was, and its pages are mapped (MADV_POPULATE_READ). A mapping the host will not
    make writable, or a kernel without MADV_POPULATE_READ, leaves things as they were."""
    with open("/proc/self/maps") as f:
        maps = f.read().splitlines()
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/") or fields[5].endswith(" (deleted)"):
            continue
        perms = fields[1]
        if perms[1] == "w" or perms[3] != "p":
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        prot = (PROT_READ if perms[0] == "r" else 0) | (PROT_EXEC if perms[2] == "x" else 0)
        if not prot & PROT_READ or libc.mprotect(lo, hi - lo, prot | PROT_WRITE) != 0:
            continue
        byte = ctypes.c_char.from_address(lo)
        byte.value = byte.value
        check("zygote", "mprotect", libc.mprotect(lo, hi - lo, prot))
        libc.madvise(lo, hi - lo, MADV_POPULATE_READ)


def drop_bounding_set():
    """Empties the capability bounding set: nothing a run execs can gain a capability.
    The zygote keeps the ones it holds (to make each run's namespaces and mounts); each
    program loses them when it becomes its uid."""
    for c in range(S["cap_last"] + 1):
        if libc.prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 and ctypes.get_errno() != 22:
            check("confine", f"drop capability {c}", -1)


def confine(cfg, uid):
    """Makes this process the program's: what the Go init's confine and spawn do."""
    os.setsid()
    for r in cfg.get("rlimits") or []:
        cur, mx = r["cur"], r["max"]
        cur = resource.RLIM_INFINITY if cur >= 1 << 63 else cur
        mx = resource.RLIM_INFINITY if mx >= 1 << 63 else mx
        resource.setrlimit(r["resource"], (cur, mx))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    # A change of uid makes a process undumpable (its /proc files root's); an exec
    # would make it dumpable again, and a program run in this process has none.
    check("confine", "dumpable", libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
    check("confine", "no_new_privs", libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    if cfg.get("landlock"):
        rs = ruleset(bool(cfg.get("loopback")))
        if rs >= 0:
            check("landlock", "restrict", LANDLOCK_RESTRICT_SELF(NR["landlock_restrict_self"], rs, 0))
            os.close(rs)
    check("seccomp", "install filter", SECCOMP(NR["seccomp"], SECCOMP_SET_MODE_FILTER, 0, FPROG_ADDR))


def look_path(name, env):
    if "/" in name:
        return name
    path = ""
    for kv in env:
        if kv.startswith("PATH="):
            path = kv[5:]
    for d in path.split(":"):
        if not d:
            continue
        p = os.path.join(d, name)
        try:
            st = os.stat(p)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o111:
            return p
    raise Failure("exec", f"{name}: command not found in the box's PATH ({path})")


ENV = sorted(f"{k}={v}" for k, v in os.environ.items())


def in_process(argv, env):
    """The script path when argv is this interpreter running a file, as it was started
    and with its environment (the one /proc/self/environ shows): then the script runs
    here, with the start-up already done."""
    pre = S["python"]
    if argv[: len(pre)] != pre or len(argv) <= len(pre) or argv[len(pre)].startswith("-"):
        return None
    if sorted(env) != ENV:
        return None
    return argv[len(pre)]


def run_python(script, argv):
    """Runs the script as `python3 FLAGS script args` would, in this process."""
    path = os.path.abspath(script)
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
    except BaseException:
        # The interpreter's own report of a file that does not compile (or cannot be
        # read), word for word: a syntax error is rare, and this is exact.
        os.execv(argv[0], argv)
    sys.argv = argv[len(S["python"]) :]
    sys.path[0] = os.path.dirname(path)
    main = types.ModuleType("__main__")
    main.__file__, main.__cached__, main.__spec__, main.__builtins__ = path, None, None, builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
        code = 0
    except SystemExit as e:
        code = exit_code(e)
    except BaseException as e:
        # The traceback as the interpreter prints it: from the script's own frame.
        tb = e.__traceback__.tb_next if e.__traceback__ else None
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        if isinstance(e, KeyboardInterrupt):
            flush()
            _signal.signal(SIGINT, SIG_DFL)
            os.kill(os.getpid(), SIGINT)
        code = 1
    finish(code)


def exit_code(e):
    """The exit status of an uncaught SystemExit, as the interpreter makes it."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    try:
        print(e.code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            pass


def finish(code):
    """What the interpreter does at exit that a program can see: wait for its threads,
    run its atexit functions, flush its output. Then exit without tearing the
    interpreter down: that would touch every object the zygote made, copying each page
    of its heap into this process for nothing."""
    try:
        threading._shutdown()
    except BaseException as e:
        code = code or 1
        sys.excepthook(type(e), e, e.__traceback__)
    atexit._run_exitfuncs()
    flush()
    os._exit(code)


REHEARSAL = b"import sys\nprint(sys.argv, 1 + 2 * 3, [x for x in range(3)])\n"


def rehearse(cfg, uid):
    """Goes through what taking a run will, before the run is known: a forked
    process copies each page it first writes to, and the copies made now are not made
    on the run's clock. Nothing of it stays: its input file is written, read, compiled
    and removed before the run's config is read."""
    name = ".runbox-rehearsal.py"
    data = json.dumps(dict(cfg, argv=S["python"] + [name], env=ENV, files=[{"name": name, "size": len(REHEARSAL)}])).encode()
    run, contents, _ = read_config(data + b"\n" + REHEARSAL)
    write_files(run, contents, uid)
    path = os.path.abspath(os.path.join("/work", name))
    try:
        with open(path, "rb") as f:
            compile(f.read(), path, "exec", dont_inherit=True)
    finally:
        os.unlink(path)
    in_process(run["argv"], run["env"])
    os.path.dirname(path)
    types.ModuleType("__main__")
    importlib.machinery.SourceFileLoader("__main__", path)
    # What finish() touches: the main thread's state, the shutdown locks, the streams.
    if not threading._main_thread._is_stopped and threading._main_thread._tstate_lock.locked():
        with threading._shutdown_locks_lock:
            list(threading._shutdown_locks)
    flush()


def enter(joins, loopback):
    """Puts H in the run's cgroup (joins: its cgroup.procs files), then in an ipc
    namespace of its own, and a network namespace when the run has one."""
    for fd in joins:
        try:
            os.write(fd, b"0")
        except OSError as e:
            raise Failure("cgroup", f"join the run's cgroup: {e.strerror}")
    flags = CLONE_NEWIPC
    if S.get("netns") or loopback:
        flags |= CLONE_NEWNET
    check("namespaces", "unshare", libc.unshare(flags))
    if loopback:
        loopback_up()


def program(cfg, uid, out, err, errw, cfgr, mode, joins, loopback):
    """H: never returns. It is confined as cfg (the run's shape) says, then reads its
    run's config on cfgr (argv, env, files, stdin: nothing of them passes through the
    zygote or pid 1, which serve other runs after this one). A ready run (mode "w")
    first says on errw that it waits, and its shape is its template's defaults; one
    made to exec early (mode "e") execs its template's command first, which does
    both itself (see exec_early)."""
    exe = None
    # What a fresh interpreter has: pid 1 ignores SIGINT, and an ignored signal would
    # stay ignored in the program, exec'd or not (a caught one is reset by exec).
    _signal.signal(SIGINT, signal.default_int_handler)
    try:
        enter(joins, loopback)
        confine(cfg, uid)
        if mode == b"e":
            exe = look_path(cfg["argv"][0], cfg.get("env") or [])
            exec_early(cfg, exe, out, err, cfgr, errw)
        if mode == b"w":
            rehearse(cfg, uid)
            os.write(errw, b"r")
        data = read_all(cfgr)
        if not data:  # a ready run given up unused, or the host gone
            os._exit(0)
        run, contents, stdin = read_config(data)
        write_files(run, contents, uid)
        cfg = dict(cfg, argv=run["argv"], env=run.get("env"), combined=run.get("combined"))
        if stdin is None:
            stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(out if cfg.get("combined") else err, 2)
        os.closerange(3, errw)
        os.closerange(errw + 1, 1 << 20)
        os.chdir("/work")
        env = cfg.get("env") or []
        argv = cfg["argv"]
        script = in_process(argv, env)
        if script is None:
            exe = look_path(argv[0], env)
            execve(exe, argv, env)
    except Failure as f:
        os.write(errw, json.dumps({"stage": f.stage, "error": str(f)}).encode())
        os._exit(127)
    except (OSError, ValueError, KeyError) as e:
        if exe is not None:
            st = {"stage": "exec", "error": f"exec {exe}: {getattr(e, 'strerror', e)}"}
        else:
            st = {"stage": "confine", "error": str(e)}
        os.write(errw, json.dumps(st).encode())
        os._exit(127)
    # The program is this process from here: the report pipe closes with the rest.
    os.close(errw)
    run_python(script, argv)


def execve(exe, argv, env):
    """Execs the program with the signal dispositions a fresh process has: the
    interpreter ignores SIGPIPE and SIGXFSZ, and an ignored signal survives exec."""
    _signal.signal(SIGPIPE, SIG_DFL)
    _signal.signal(SIGXFSZ, SIG_DFL)
    os.execve(exe, argv, dict(kv.split("=", 1) for kv in env))


# Where exec_early puts a ready run's config pipe and report pipe: far above what the
# program opens as it starts, so that those descriptors get the numbers they get in a
# run that is exec'd with 0, 1 and 2 only (node-ready.js has the same numbers).
EARLY_CONFIG_FD, EARLY_REPORT_FD = 100, 101


def exec_early(cfg, exe, out, err, cfgr, errw):
    """Execs a ready run's program before its run is known, confined, in /, with
    stdin /dev/null, its output on 1 and 2, the config pipe on EARLY_CONFIG_FD and the
    report pipe on EARLY_REPORT_FD: the program says "r" on the report pipe once it
    waits for its config, reads the config, writes the input files, changes to /work
    and closes both pipes as the run's code starts (sandbox/boxinit/node-ready.js).
    Never returns."""
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    fds = {0: null, 1: out, 2: err, EARLY_CONFIG_FD: cfgr, EARLY_REPORT_FD: errw}
    high = {to: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 128) for to, fd in fds.items()}
    for to, fd in high.items():
        os.dup2(fd, to)  # inheritable
    try:
        os.closerange(3, EARLY_CONFIG_FD)
        os.closerange(EARLY_REPORT_FD + 1, 1 << 20)
        # Not yet /work: what the program looks up there as it starts (node, the
        # package.json of its preload's parent) would be looked up before the files
        # are; it changes to /work once they are.
        os.chdir("/")
        execve(exe, cfg["argv"], cfg.get("env") or [])
    except OSError as e:
        os.write(EARLY_REPORT_FD, json.dumps({"stage": "exec", "error": f"exec {exe}: {e.strerror}"}).encode())
    os._exit(127)


def pid1(data, fds, parsed, sock, token):
    """G: pid 1 of its namespaces, serving one run after another (see the top): the
    run in the message it was cloned for, then each the zygote sends on sock, its own
    socket (after G said it is free: token on IDLE_W). Never returns."""
    _signal.signal(SIGCHLD, SIG_DFL)
    _signal.signal(SIGINT, SIG_IGN)
    for s in (SOCK, *PID1S.values()):
        os.close(s.detach())
    os.close(IDLE_R)
    free = struct.pack("=I", token)
    first = True
    while serve_run(data, fds, parsed, first, free):
        first = False
        data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 16)
        if not data:  # the zygote is gone, or has G's enough
            break
        parsed = shape_config(data)
    os._exit(0)


def serve_run(data, fds, parsed, first, free):
    """One run in G. The message: its first byte "p" (a run), "w" (a ready run) or
    "e" (a ready run whose program execs its config's command before its run is
    known: exec_early), its second "l" (the run has a loopback of its own) or "n",
    then the run's shape (a config with its limits and uid: a ready run's are its
    template's defaults; parsed is read_config's outcome for it, when shape_config
    had it); its fds: the config pipe, to the program, the run's stdout, stderr and
    status pipes, and its cgroup's join files. Returns once the run is reported, and
    whether this G can take another (then it has written free on IDLE_W); a failure
    to set the run up is reported, and G exits."""
    mode = data[:1]
    cfgr, out, err, status = fds[:4]
    joins = fds[4:]
    mounted = []
    try:
        if first:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "")
        cfg, contents, stdin = parsed or read_config(data[2:])
        if contents or stdin is not None:
            raise Failure("config", "the run's files or stdin came to pid 1: they go to the program")
        uid = cfg["uid"]
        for d, perm in (("/work", 0o755), ("/tmp", 0o1777), ("/dev/shm", 0o1777)):
            mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['tmp_size']},nr_inodes={cfg['tmp_inodes']},mode={perm:o}")
            mounted.append(d)
        write_files(cfg, contents, uid)
    except Failure as f:
        report(status, {"stage": f.stage, "error": str(f)})
        os._exit(1)
    except (OSError, ValueError, KeyError) as e:
        report(status, {"stage": "config", "error": str(e)})
        os._exit(1)
    errr, errw = os.pipe2(os.O_CLOEXEC)
    # libc's fork, not os.fork: the interpreter's after-fork work in the child (its
    # locks, and threading's at-fork handler) copies ~150 pages into every program,
    # for a process with one thread and no lock held. glibc's fork keeps its own
    # state (the cached thread id) right.
    h = pylib.fork()
    if h < 0:
        report(status, {"stage": "namespaces", "error": "fork: " + os.strerror(ctypes.get_errno())})
        os._exit(1)
    if h == 0:
        os.close(errr)
        os.close(status)
        program(cfg, uid, out, err, errw, cfgr, mode, joins, data[1:2] == b"l")
    os.close(errw)
    for fd in (cfgr, out, err, *joins):
        os.close(fd)
    msg = os.read(errr, 1 << 16)
    if msg[:1] == b"r":  # confined and waiting for its run
        os.write(status, b'{"ready":true}\n')
        msg = msg[1:]
        # The errors the end of the run raises here, raised once now: their pages
        # are copied off the run's clock (no such pid; no child to wait for).
        for call in (lambda: os.kill(0x7FFFFFFF, 0), lambda: os.waitpid(0x7FFFFFFF, os.WNOHANG)):
            try:
                call()
            except OSError:
                pass
    msg += read_all(errr)  # until the program's exec, or its code's start
    started = time.time_ns()
    st, ended = {"started": True}, None
    if msg:
        try:
            st = json.loads(msg)
        except ValueError:
            st = {"stage": "exec", "error": msg.decode(errors="replace")}
    while True:
        try:
            pid, ws = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == h:
            if os.WIFSIGNALED(ws):
                ended = {"exited": False, "signal": os.WTERMSIG(ws)}
            else:
                ended = {"exited": True, "exit_code": os.WEXITSTATUS(ws)}
            try:
                os.kill(-1, SIGKILL)
            except ProcessLookupError:
                pass
    ended_ns = time.time_ns()
    # The namespace is empty: nothing of the run is left but its file systems.
    fit = True
    for d in mounted:
        fit &= libc.umount2(d.encode(), MNT_DETACH) == 0
    if fit:
        os.write(IDLE_W, free)
    try:
        if st == {"started": True} and ended is not None:
            # The common report, formatted without the json module: the encoder's
            # pages would be copied into this process for one line.
            how = b'"exited":false,"signal":%d' % ended["signal"] if "signal" in ended else b'"exited":true,"exit_code":%d' % ended["exit_code"]
            os.write(status, b'{"started":true,%s,"program_ns":%d,"ended_ns":%d}\n' % (how, started, ended_ns))
        else:
            st.update(ended or {}, program_ns=started, ended_ns=ended_ns)
            report(status, st)
    except OSError:
        pass  # the host gave the run up (it closed the pipe): G is still free
    os.close(status)
    return fit


SHAPES = {}


def shape_config(data):
    """read_config's outcome for a message's shape, parsed once per shape (a run's
    limits and uid) rather than in each run's pid 1, where parsing copies ~180 pages
    of the interpreter's. None when it does not parse cleanly or has files or stdin
    (a shape has neither): pid 1 then parses it and reports why."""
    key = bytes(data[2:])
    got = SHAPES.get(key)
    if got is None:
        try:
            got = read_config(key)
        except Exception:
            return None
        if got[2] is not None:
            os.close(got[2])
            return None
        if got[1]:
            return None
        if len(SHAPES) >= 256:
            SHAPES.clear()
        SHAPES[key] = got
    return got


def serve():
    _signal.signal(SIGCHLD, SIG_IGN)  # each run's pid 1 is reaped by the kernel
    # The first compile is slow; a run should not pay for it.
    compile("print(1)\n", "<warm>", "exec", dont_inherit=True)
    # Nothing the zygote made is garbage: the collector of a run need not visit it
    # (visiting writes to each object, which copies its page into the run).
    gc.collect()
    gc.freeze()
    map_code_into_forks()
    SOCK.send(b"ready")
    idle = []  # the tokens of the G's waiting for a run, the last freed last
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(SOCK, MAX_MESSAGE, 16)
        except InterruptedError:
            continue
        if not data:
            return
        # The message and its fds: see serve_run.
        if data[:1] not in (b"p", b"w", b"e") or len(data) < 2 or len(fds) < 4:
            for fd in fds:
                os.close(fd)
            continue
        try:
            freed = os.read(IDLE_R, 4 << 10)
        except BlockingIOError:
            freed = b""
        idle.extend(t for (t,) in struct.iter_unpack("=I", freed) if t in PID1S)
        while len(idle) > MAX_IDLE:  # the surplus goes: its socket closes
            forget(idle.pop(0))
        # The G freed last: its pages are the likeliest still mapped for it. One that
        # died waiting has its socket closed: the send fails, and the next is tried.
        handed = False
        while idle and not handed:
            handed = hand(idle.pop(), data, fds)
        if not handed:
            clone_pid1(data, fds)
        for fd in fds:
            os.close(fd)


def hand(token, data, fds):
    """Sends a run's message to the waiting G of token; False when that G is gone (it
    is forgotten)."""
    try:
        socket.send_fds(PID1S[token], [data], fds)
        return True
    except OSError:
        forget(token)
        return False


def forget(token):
    """Closes the zygote's end of a G's socket: a G waiting on it exits."""
    os.close(PID1S.pop(token).detach())


def clone_pid1(data, fds):
    """Clones a G for the run in data and fds, with a socket of its own for the runs
    after it. G's that are gone are forgotten first (a G that failed a run exits)."""
    for token, sock in list(PID1S.items()):
        if select.select([sock], [], [], 0)[0]:  # readable: its peer closed
            forget(token)
    token = next(TOKENS)
    ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parsed = shape_config(data)
    pid = CLONE(NR["clone"], CLONE_NEWNS | CLONE_NEWPID | SIGCHLD, None, None, None, 0)
    if pid == 0:
        os.close(ours.detach())
        pid1(data, fds, parsed, its, token)
    os.close(its.detach())
    if pid < 0:
        os.close(ours.detach())
        report(fds[3], {"stage": "namespaces", "error": "clone: " + os.strerror(ctypes.get_errno())})
        return
    PID1S[token] = ours


MAX_MESSAGE = 1 << 16
# How many G's may wait for a run: each holds the pages it copied (a few hundred KiB).
MAX_IDLE = 2 * len(os.sched_getaffinity(0)) + 2
SOCK = socket.socket(fileno=3)
# The zygote's end of each G's socket, by the G's token; where a G that is free says
# so (its token, 4 bytes: a pipe write that size is never split); the tokens.
PID1S = {}
IDLE_R, IDLE_W = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
TOKENS = itertools.count(1)
drop_bounding_set()
serve()
