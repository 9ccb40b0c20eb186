// Package native is the Linux sandbox backend: each run gets new user, pid, mount,
// network, ipc, uts and cgroup namespaces, a cgroup of its own (memory with swap off,
// pids, CPU accounting), a fresh read-only root with size-capped tmpfs for the work
// directory, /tmp and /dev/shm, rlimits, a seccomp filter, Landlock where the kernel
// has it, and an unprivileged uid.
//
// Pid 1 of each box is this same binary re-executed (the runc pattern; see
// init_linux.go): it builds the box's file system, drops privileges, execs nothing
// itself but forks the program directly (so a segfault is SIGSEGV, not a shell's 139),
// reaps every process of the box, and reports the program's end to the host. A
// program that imports this package gets the init through the package's init
// function, before its main runs.
//
// The package registers itself as "native" with sandbox.Register.
package native
