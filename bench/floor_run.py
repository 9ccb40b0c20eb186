"""The floor beside bench/run.sh: what running each script of a directory in its own
namespaces costs a Python that does nothing else, with two workers (-j 2).

Each worker is a Python that did its imports and froze its heap, then per script:
clone(2) a pid 1 into new pid, mount and ipc namespaces; pid 1 forks the program,
which runs the script's code (read by the worker, compiled by the program) with
its output to /dev/null, and exits; pid 1 reaps it and exits; the worker reaps pid 1.
With --full, also what a runbox box adds that has a kernel cost: a cgroup per script
(memory and pids limits, joined by pid 1), a private mount tree with tmpfs on three
directories and a /proc, and a program that leaves the session, sets rlimits, changes
uid and installs a seccomp filter. No Landlock, no pipes to a host, no reports, no
logs: those are the rest of runbox's cost.

With --reuse, each worker clones one pid 1 that serves all its scripts, as runbox's
does: per script it forks the program (with --full: mounts the tmpfs before and
unmounts them after, and the program joins the script's cgroup and unshares an ipc
namespace).

Usage: floor_run.py [--full] [--reuse] DIR     prints the seconds the whole directory took.
Needs root (namespaces, cgroups). Run with /usr/bin/python3 -I -S.
"""
import ctypes
import gc
import os
import resource
import signal
import struct
import sys
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x20000, 0x8000000, 0x20000000
NR_CLONE, NR_SECCOMP = 56, 317  # x86-64
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 0x40000
libc = ctypes.CDLL(None, use_errno=True)
pylib = ctypes.PyDLL(None, use_errno=True)  # holds the GIL across clone and fork
pylib.syscall.restype = ctypes.c_long


class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# A filter the size of runbox's (~150 instructions) that allows everything.
INSNS = b"".join(struct.pack("<HBBI", 0x15, 0, 0, i) for i in range(149)) + struct.pack("<HBBI", 0x06, 0, 0, 0x7FFF0000)
FILTER = ctypes.create_string_buffer(INSNS, len(INSNS))
FPROG = Fprog(len(INSNS) // 8, ctypes.cast(FILTER, ctypes.c_void_p))


def mount(src, target, fstype, flags, data):
    enc = lambda v: v.encode() if v else None
    if libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {target}: {os.strerror(e)}")


class Cgroup:
    """A cgroup with a memory and a pids limit, v2 or v1 (memory, pids)."""

    def __init__(self, name):
        v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        self.dirs = [f"/sys/fs/cgroup/{name}"] if v2 else [f"/sys/fs/cgroup/{c}/{name}" for c in ("memory", "pids")]
        for d in self.dirs:
            os.mkdir(d)
        limits = {"memory.max": "268435456", "pids.max": "64"} if v2 else {"memory.limit_in_bytes": "268435456", "pids.max": "64"}
        for f, v in limits.items():
            for d in self.dirs:
                if os.path.exists(f"{d}/{f}"):
                    with open(f"{d}/{f}", "w") as fh:
                        fh.write(v)
        self.procs = [os.open(f"{d}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]

    def remove(self):
        for fd in self.procs:
            os.close(fd)
        for d in self.dirs:
            for _ in range(1000):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.001)


def program(path, src, full, uid, cg=None):
    if cg:  # a reused pid 1 is not in the script's cgroup: the program joins it
        for fd in cg.procs:
            os.write(fd, b"0")
        if libc.unshare(CLONE_NEWIPC) != 0:
            os._exit(125)
    if full:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        libc.prctl(38, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))  # no_new_privs
        if libc.syscall(ctypes.c_long(NR_SECCOMP), ctypes.c_long(1), ctypes.c_long(0), ctypes.byref(FPROG)) != 0:
            os._exit(126)
    try:
        exec(compile(src, path, "exec", dont_inherit=True), {"__name__": "__main__"})
        sys.stdout.flush()
    except BaseException as e:  # a fork of main: main's clean-up is not its to run
        die(f"{path}: {e!r}")
    os._exit(0)


def die(msg):
    """Ends a worker or a pid 1 (a fork of main, whose clean-up is main's alone)."""
    print(msg, file=sys.stderr, flush=True)
    os._exit(1)


def mount_tmpfs(dirs):
    for d in dirs:
        mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,nr_inodes=4096,mode=755")


def reap_all():
    """Waits for every child; returns the first wait status that is not 0 (or 0)."""
    bad = 0
    while True:
        try:
            _, ws = os.waitpid(-1, 0)
        except ChildProcessError:
            return bad
        bad = bad or ws


def clone_pid1():
    """clone(2) into new pid, mount and ipc namespaces: 0 in the child, its pid here."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | signal.SIGCHLD
    pid = pylib.syscall(ctypes.c_long(NR_CLONE), ctypes.c_long(flags), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
    if pid < 0:
        die("clone: " + os.strerror(ctypes.get_errno()))
    return pid


def pid1(path, src, full, cg, dirs, uid):
    if full:
        for fd in cg.procs:
            os.write(fd, b"0")
        mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        mount_tmpfs(dirs)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    if pylib.fork() == 0:
        program(path, src, full, uid)
    os._exit(1 if reap_all() else 0)


def reused_pid1(paths, full, slot, dirs):
    """One pid 1 for all of a worker's scripts."""
    if full:
        mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    for i, path in enumerate(paths):
        with open(path, "rb") as f:
            src = f.read()
        cg = Cgroup(f"runbox-floor-{os.getpid()}-{slot}-{i}") if full else None
        if full:
            mount_tmpfs(dirs)
        if pylib.fork() == 0:
            program(path, src, full, 60000 + slot, cg)
        ws = reap_all()
        if full:
            for d in dirs:
                libc.umount2(d.encode(), 2)  # MNT_DETACH
            cg.remove()
        if ws != 0:
            die(f"{path}: the program ended with wait status {ws}")
    os._exit(0)


def worker(paths, full, slot, dirs, reuse):
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)
    gc.collect()
    gc.freeze()
    if reuse:
        pid = clone_pid1()
        if pid == 0:
            reused_pid1(paths, full, slot, dirs)
        _, ws = os.waitpid(pid, 0)
        os._exit(1 if ws else 0)
    for i, path in enumerate(paths):
        with open(path, "rb") as f:
            src = f.read()
        cg = Cgroup(f"runbox-floor-{os.getpid()}-{i}") if full else None
        pid = clone_pid1()
        if pid == 0:
            pid1(path, src, full, cg, dirs, 60000 + slot)
        _, ws = os.waitpid(pid, 0)
        if cg:
            cg.remove()
        if ws != 0:
            die(f"{path}: pid 1 ended with wait status {ws}")
    os._exit(0)


def main():
    args = sys.argv[1:]
    full, reuse = "--full" in args, "--reuse" in args
    args = [a for a in args if a not in ("--full", "--reuse")]
    if len(args) != 1:
        sys.exit(__doc__)
    paths = sorted(os.path.join(args[0], n) for n in os.listdir(args[0]) if n.endswith(".py"))
    # Mount points for the tmpfs mounts (in each pid 1's own mount namespace).
    tmp = f"/tmp/runbox-floor-{os.getpid()}"
    dirs = [os.path.join(tmp, d) for d in ("work", "tmp", "shm")]
    os.mkdir(tmp)
    for d in dirs:
        os.mkdir(d)
    try:
        start = time.monotonic()
        kids = []
        for slot in range(2):
            pid = os.fork()
            if pid == 0:
                worker(paths[slot::2], full, slot, dirs, reuse)
            kids.append(pid)
        failed = False
        for pid in kids:
            _, ws = os.waitpid(pid, 0)
            failed |= ws != 0
        elapsed = time.monotonic() - start
    finally:
        for d in dirs:
            os.rmdir(d)
        os.rmdir(tmp)
    if failed:
        sys.exit("a worker failed")
    print(f"{elapsed:.3f}")


main()
