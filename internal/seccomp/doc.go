// Package seccomp builds and installs the system call filter of the runbox native
// sandbox, in pure Go.
//
// The init process of a sandbox calls [Install] after it has set up its mounts and
// before it starts the user's program, which inherits the filter together with every
// process and thread it creates. [Program] returns the same filter as data, for tests
// and size checks.
//
// # Policy
//
// The filter is a deny list over a default of ALLOW: Python, Node and Bash use a broad
// and changing set of system calls, and the sandbox's namespaces, cgroups and dropped
// privileges remain the main boundary. The filter removes kernel surface that a
// sandboxed program has no use for and that could reach the host or another run.
//
//   - Any system call made with another architecture's calling convention (i386 through
//     int 0x80 on amd64, AArch32 on arm64) kills the process: the numbers in the filter
//     are the native ones only. On amd64 the x32 ABI, which shares the native audit
//     architecture but sets bit 30 of the number, fails with ENOSYS.
//   - EPERM for the system calls that Docker's default profile denies to an
//     unprivileged container: kernel modules, kexec, reboot, swap, clocks, accounting,
//     quotas, mounts and the new mount API, pivot_root, namespaces (unshare, setns),
//     ptrace, process_vm_readv/writev, kcmp, pidfd_getfd, perf_event_open, bpf,
//     userfaultfd, NUMA policy, file handles (open_by_handle_at), I/O ports, syslog,
//     vhangup, fanotify, and obsolete calls such as _sysctl, uselib and ustat.
//     personality is allowed only with the values Docker allows (PER_LINUX,
//     PER_LINUX32, UNAME26 and the query 0xffffffff), so that ADDR_NO_RANDOMIZE and
//     READ_IMPLIES_EXEC cannot weaken the address space of the programs it execs.
//   - clone with any namespace flag fails with EPERM; threads and fork work. clone3
//     fails with ENOSYS, because its flags live in memory that a seccomp filter cannot
//     read; glibc and Go then fall back to clone. (Go's os/exec needs clone3 only for
//     SysProcAttr.UseCgroupFD.)
//   - Channels between runs, as isolate closes them: the kernel keyrings (add_key,
//     request_key, keyctl) are not namespaced; AF_VSOCK reaches the hypervisor and
//     other guests; io_uring performs its operations without passing through this
//     filter, and memfd_secret and process_madvise are new surface nobody needs; flock
//     and the fcntl locks (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW) on inodes shared
//     read-only between runs would let two runs signal each other, so they fail with
//     ENOLCK, which programs already handle for file systems without locks. F_GETLK
//     still works.
//   - socket and socketpair work only for AF_UNIX, AF_INET and AF_INET6; other
//     families (netlink, packet, vsock, key, bluetooth, alg, …) fail with
//     EAFNOSUPPORT. glibc's getaddrinfo does without netlink; getifaddrs, and so
//     Python's socket.if_nameindex and Node's os.networkInterfaces, fail.
//     SOCK_RAW and SOCK_PACKET sockets of AF_INET and AF_INET6 fail with EPERM, as
//     without CAP_NET_RAW (the kernel turns AF_INET with SOCK_PACKET into a packet
//     socket).
//   - ioctl TIOCSTI (push input into a terminal) and TIOCLINUX fail with EPERM.
//
// Every argument the filter inspects is a 32-bit int or unsigned int in the kernel (the
// clone flags are truncated to 32 bits too), so the filter compares the low 32-bit word
// of the argument only, as the kernel does: setting high bits cannot slip past it.
//
// A system call that the filter does not name takes a path that reads only the
// architecture and the number, so the kernel (5.11 and later) caches its ALLOW and
// skips the filter for it entirely; the calls with argument checks come first.
//
// Install is Linux-only; the package supports amd64 and arm64, and [Program] returns
// an error wrapping [errors.ErrUnsupported] on other architectures.
package seccomp
