//go:build linux

package seccomp

import (
	"slices"

	"golang.org/x/sys/unix"
)

// rules is the runbox policy: the system calls that fail, in the order the filter tests
// them. The first rule of a system call whose checks all hold decides; a system call
// without a matching rule is allowed. The package doc says why each rule is here.
var rules = slices.Concat(
	// Argument checks first, ioctl and fcntl being the most frequent: the filter is a
	// linear scan, which the kernel skips for the calls it allows whatever their
	// arguments (see the package doc).
	[]rule{
		{name: "ioctl", errno: unix.EPERM, when: []check{arg(1).in(unix.TIOCSTI, unix.TIOCLINUX)}},
		{name: "fcntl", errno: unix.ENOLCK, when: []check{arg(1).in(setLockCommands...)}},
		{name: "fcntl64", errno: unix.ENOLCK, when: []check{arg(1).in(setLockCommands...)}},
		{name: "socket", errno: unix.EAFNOSUPPORT, when: []check{arg(0).notIn(socketFamilies...)}},
		{name: "socket", errno: unix.EPERM, when: []check{
			arg(0).in(unix.AF_INET, unix.AF_INET6), arg(1).masked(sockTypeMask).in(rawSocketTypes...)}},
		{name: "socketpair", errno: unix.EAFNOSUPPORT, when: []check{arg(0).notIn(socketFamilies...)}},
		{name: "socketpair", errno: unix.EPERM, when: []check{
			arg(0).in(unix.AF_INET, unix.AF_INET6), arg(1).masked(sockTypeMask).in(rawSocketTypes...)}},
		// The flags are argument 0 of clone on amd64 and arm64 alike (only s390 and
		// cris swap them with the stack), and the kernel reads their low 32 bits only.
		{name: "clone", errno: unix.EPERM, when: []check{arg(0).anyOf(cloneNamespaces)}},
		{name: "personality", errno: unix.EPERM, when: []check{arg(0).notIn(personalities...)}},
		{name: "clone3", errno: unix.ENOSYS},
		{name: "flock", errno: unix.ENOLCK},
		// Limits may be read, not changed: a program must not raise what the box set
		// (its process count above all, RLIMIT_NPROC).
		{name: "prlimit64", errno: unix.EPERM, when: []check{arg(2).nonNull()}},
		{name: "setrlimit", errno: unix.EPERM},
	},
	always(unix.EPERM, dockerDenied...),
	always(unix.EPERM, crossRunDenied...),
)

// dockerDenied are the system calls that Docker's default seccomp profile denies to a
// container without extra capabilities. vm86 and vm86old exist on i386 only, whose
// calls the architecture check already kills; they stay for completeness.
var dockerDenied = []string{
	// Kernel modules, kexec, reboot, swap.
	"create_module", "init_module", "finit_module", "delete_module", "query_module",
	"get_kernel_syms", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
	// Clocks and accounting.
	"clock_adjtime", "clock_settime", "settimeofday", "acct",
	// Mounts, the new mount API, file handles.
	"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
	"fsmount", "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at",
	"quotactl", "quotactl_fd", "nfsservctl",
	// Namespaces; clone is checked by flag above.
	"unshare", "setns",
	// Other processes' memory and files.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	// Kernel interfaces with a history of privilege escalations.
	"bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "fanotify_init",
	// NUMA policy of the host.
	"get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind", "move_pages",
	// Hardware and the console.
	"ioperm", "iopl", "vm86", "vm86old", "syslog", "vhangup",
	// Obsolete.
	"_sysctl", "sysfs", "uselib", "ustat",
}

// crossRunDenied close channels between runs and surface that Docker still allows.
var crossRunDenied = []string{
	// Keyrings are not namespaced.
	"add_key", "request_key", "keyctl",
	// io_uring performs operations without passing through seccomp.
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"memfd_secret", "process_madvise",
}

// cloneNamespaces are the clone flags that create namespaces. CLONE_NEWTIME (0x80) is
// missing on purpose: clone takes that bit as part of the exit signal, and only clone3
// and unshare, denied whole, accept it.
const cloneNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// setLockCommands are the fcntl commands that take a lock. On 64-bit architectures
// F_SETLK64 and F_SETLKW64 are the same numbers.
var setLockCommands = []uint32{unix.F_SETLK, unix.F_SETLKW, unix.F_OFD_SETLK, unix.F_OFD_SETLKW}

// socketFamilies are the only address families that socket and socketpair accept.
var socketFamilies = []uint32{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6}

// sockTypeMask keeps the socket type and drops SOCK_NONBLOCK and SOCK_CLOEXEC, as
// the kernel does (SOCK_TYPE_MASK).
const sockTypeMask = 0xf

// rawSocketTypes need CAP_NET_RAW outside the sandbox; AF_INET with SOCK_PACKET is an
// old spelling of an AF_PACKET socket.
var rawSocketTypes = []uint32{unix.SOCK_RAW, unix.SOCK_PACKET}

// Personalities (include/uapi/linux/personality.h) that Docker allows.
const (
	perLinux         = 0x0000
	perLinux32       = 0x0008
	uname26          = 0x0020000
	personalityQuery = 0xffffffff
)

var personalities = []uint32{perLinux, perLinux32, uname26, uname26 | perLinux32, personalityQuery}

// rule makes system call name fail with errno when all checks in when hold, or always
// when there are none.
type rule struct {
	name  string
	errno unix.Errno
	when  []check
}

// always returns rules that make each of names fail with errno.
func always(errno unix.Errno, names ...string) []rule {
	rs := make([]rule, len(names))
	for i, name := range names {
		rs[i] = rule{name: name, errno: errno}
	}
	return rs
}

// check tests the low 32 bits of one system call argument, ANDed with mask when mask
// is not zero: whether they equal one of values (opIn), none of them (opNotIn), or
// share a bit with values[0] (opAnyOf); or whether all 64 bits are not zero
// (opNonZero64, no values).
type check struct {
	arg    int
	mask   uint32
	op     checkOp
	values []uint32
}

type checkOp int

const (
	opIn checkOp = iota
	opNotIn
	opAnyOf
	opNonZero64 // all 64 bits, for a pointer that must be NULL
)

// argument names one argument of the system call, numbered from 0.
type argument int

func arg(i int) argument { return argument(i) }

func (a argument) in(values ...uint32) check { return check{arg: int(a), op: opIn, values: values} }

func (a argument) notIn(values ...uint32) check {
	return check{arg: int(a), op: opNotIn, values: values}
}

func (a argument) anyOf(bits uint32) check {
	return check{arg: int(a), op: opAnyOf, values: []uint32{bits}}
}

// nonNull holds when the argument, a pointer, is not NULL (all 64 bits are tested).
func (a argument) nonNull() check { return check{arg: int(a), op: opNonZero64} }

// masked is the argument ANDed with mask, to check some of its bits.
func (a argument) masked(mask uint32) maskedArgument { return maskedArgument{a, mask} }

type maskedArgument struct {
	arg  argument
	mask uint32
}

func (m maskedArgument) in(values ...uint32) check {
	c := m.arg.in(values...)
	c.mask = m.mask
	return c
}
