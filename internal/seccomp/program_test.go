//go:build linux && (amd64 || arm64)

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// vm runs the filter of Program in x/net/bpf's interpreter.
func vm(t *testing.T) *bpf.VM {
	t.Helper()
	filter, err := Program()
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(filter))
	for i, f := range filter {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("Program has instructions that x/net/bpf cannot decode: %v", ins)
	}
	v, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// seccompData lays out struct seccomp_data as the kernel does on a little-endian host
// (low word of each argument first), with every 32-bit word in big-endian order because
// x/net/bpf loads words big-endian where the kernel loads them in host order.
func seccompData(audit, nr uint32, args ...uint64) []byte {
	b := make([]byte, offArgs+8*maxArgs)
	put := func(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	put(offNr, nr)
	put(offArch, audit)
	for i, a := range args {
		put(offArgs+8*i, uint32(a))
		put(offArgs+8*i+4, uint32(a>>32))
	}
	return b
}

func decide(t *testing.T, v *bpf.VM, audit, nr uint32, args ...uint64) uint32 {
	t.Helper()
	ret, err := v.Run(seccompData(audit, nr, args...))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(ret)
}

const (
	allow = unix.SECCOMP_RET_ALLOW
	kill  = unix.SECCOMP_RET_KILL_PROCESS
)

func deny(e unix.Errno) uint32 { return retErrno(e) }

func actionName(ret uint32) string {
	switch {
	case ret == allow:
		return "ALLOW"
	case ret == kill:
		return "KILL_PROCESS"
	case ret&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO:
		return fmt.Sprintf("ERRNO(%s)", unix.ErrnoName(unix.Errno(ret&unix.SECCOMP_RET_DATA)))
	}
	return fmt.Sprintf("%#x", ret)
}

// high puts v in the high word of an argument, which the kernel ignores for every
// argument the filter inspects.
func high(v uint64) uint64 { return v << 32 }

func TestProgramDecisions(t *testing.T) {
	const sigchld = uint64(unix.SIGCHLD)
	type decision struct {
		name string
		nr   uint32
		args []uint64
		want uint32
	}
	tests := []decision{
		{"getpid", unix.SYS_GETPID, nil, allow},
		{"read", unix.SYS_READ, []uint64{0, 0, 1}, allow},

		{"ioctl TCGETS", unix.SYS_IOCTL, []uint64{0, unix.TCGETS}, allow},
		{"ioctl TIOCSTI", unix.SYS_IOCTL, []uint64{0, unix.TIOCSTI}, deny(unix.EPERM)},
		{"ioctl TIOCLINUX", unix.SYS_IOCTL, []uint64{0, unix.TIOCLINUX}, deny(unix.EPERM)},
		{"ioctl TIOCSTI with high bits", unix.SYS_IOCTL, []uint64{0, high(1) | unix.TIOCSTI}, deny(unix.EPERM)},
		{"ioctl TIOCSTI in the high word only", unix.SYS_IOCTL, []uint64{0, high(unix.TIOCSTI) | unix.TCGETS}, allow},

		{"fcntl F_GETFL", unix.SYS_FCNTL, []uint64{0, unix.F_GETFL}, allow},
		{"fcntl F_GETLK", unix.SYS_FCNTL, []uint64{0, unix.F_GETLK}, allow},
		{"fcntl F_OFD_GETLK", unix.SYS_FCNTL, []uint64{0, unix.F_OFD_GETLK}, allow},
		{"fcntl F_SETLK", unix.SYS_FCNTL, []uint64{0, unix.F_SETLK}, deny(unix.ENOLCK)},
		{"fcntl F_SETLKW", unix.SYS_FCNTL, []uint64{0, unix.F_SETLKW}, deny(unix.ENOLCK)},
		{"fcntl F_OFD_SETLK", unix.SYS_FCNTL, []uint64{0, unix.F_OFD_SETLK}, deny(unix.ENOLCK)},
		{"fcntl F_OFD_SETLKW", unix.SYS_FCNTL, []uint64{0, unix.F_OFD_SETLKW}, deny(unix.ENOLCK)},
		{"fcntl F_SETLK with high bits", unix.SYS_FCNTL, []uint64{0, high(1) | unix.F_SETLK}, deny(unix.ENOLCK)},
		{"flock", unix.SYS_FLOCK, []uint64{0, unix.LOCK_SH}, deny(unix.ENOLCK)},
		{"prlimit64 read", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_NPROC, 0, 0x7fff0000}, allow},
		{"prlimit64 set", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_NPROC, 0x7fff0000, 0}, deny(unix.EPERM)},
		{"prlimit64 set at 4 GiB", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_NPROC, 1 << 32, 0}, deny(unix.EPERM)},
		{"setrlimit", unix.SYS_SETRLIMIT, []uint64{unix.RLIMIT_NPROC, 0x7fff0000}, deny(unix.EPERM)},

		{"socket unix", unix.SYS_SOCKET, []uint64{unix.AF_UNIX, unix.SOCK_STREAM}, allow},
		{"socket unix raw", unix.SYS_SOCKET, []uint64{unix.AF_UNIX, unix.SOCK_RAW}, allow},
		{"socket inet stream", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_STREAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC}, allow},
		{"socket inet6 dgram", unix.SYS_SOCKET, []uint64{unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_ICMPV6}, allow},
		{"socket inet seqpacket", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_SEQPACKET}, allow},
		{"socket inet raw", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP}, deny(unix.EPERM)},
		{"socket inet6 raw cloexec", unix.SYS_SOCKET, []uint64{unix.AF_INET6, unix.SOCK_RAW | unix.SOCK_CLOEXEC}, deny(unix.EPERM)},
		{"socket inet packet", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_PACKET}, deny(unix.EPERM)},
		{"socket inet raw with high bits", unix.SYS_SOCKET, []uint64{high(1) | unix.AF_INET, high(1) | unix.SOCK_RAW}, deny(unix.EPERM)},
		{"socket inet with high bits", unix.SYS_SOCKET, []uint64{high(unix.AF_NETLINK) | unix.AF_INET, unix.SOCK_STREAM}, allow},
		{"socket netlink", unix.SYS_SOCKET, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE}, deny(unix.EAFNOSUPPORT)},
		{"socket netlink with high bits", unix.SYS_SOCKET, []uint64{high(1) | unix.AF_NETLINK, unix.SOCK_RAW}, deny(unix.EAFNOSUPPORT)},
		{"socket packet", unix.SYS_SOCKET, []uint64{unix.AF_PACKET, unix.SOCK_DGRAM}, deny(unix.EAFNOSUPPORT)},
		{"socket vsock", unix.SYS_SOCKET, []uint64{unix.AF_VSOCK, unix.SOCK_STREAM}, deny(unix.EAFNOSUPPORT)},
		{"socket key", unix.SYS_SOCKET, []uint64{unix.AF_KEY, unix.SOCK_RAW}, deny(unix.EAFNOSUPPORT)},
		{"socket bluetooth", unix.SYS_SOCKET, []uint64{unix.AF_BLUETOOTH, unix.SOCK_STREAM}, deny(unix.EAFNOSUPPORT)},
		{"socket alg", unix.SYS_SOCKET, []uint64{unix.AF_ALG, unix.SOCK_SEQPACKET}, deny(unix.EAFNOSUPPORT)},
		{"socketpair unix", unix.SYS_SOCKETPAIR, []uint64{unix.AF_UNIX, unix.SOCK_STREAM | unix.SOCK_CLOEXEC}, allow},
		{"socketpair netlink", unix.SYS_SOCKETPAIR, []uint64{unix.AF_NETLINK, unix.SOCK_RAW}, deny(unix.EAFNOSUPPORT)},
		{"socketpair inet raw", unix.SYS_SOCKETPAIR, []uint64{unix.AF_INET, unix.SOCK_RAW}, deny(unix.EPERM)},

		{"clone fork", unix.SYS_CLONE, []uint64{sigchld}, allow},
		{"clone vfork", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PIDFD | sigchld}, allow},
		{"clone thread", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
			unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID}, allow},
		// CLONE_NEWTIME is a bit of the exit signal for clone.
		{"clone CLONE_NEWTIME", unix.SYS_CLONE, []uint64{unix.CLONE_NEWTIME}, allow},
		{"clone namespace in the high word", unix.SYS_CLONE, []uint64{high(unix.CLONE_NEWUSER) | sigchld}, allow},
		{"clone3", unix.SYS_CLONE3, []uint64{0, 88}, deny(unix.ENOSYS)},

		{"personality PER_LINUX", unix.SYS_PERSONALITY, []uint64{perLinux}, allow},
		{"personality PER_LINUX32", unix.SYS_PERSONALITY, []uint64{perLinux32}, allow},
		{"personality UNAME26", unix.SYS_PERSONALITY, []uint64{uname26}, allow},
		{"personality UNAME26|PER_LINUX32", unix.SYS_PERSONALITY, []uint64{uname26 | perLinux32}, allow},
		{"personality query", unix.SYS_PERSONALITY, []uint64{personalityQuery}, allow},
		{"personality query with high bits", unix.SYS_PERSONALITY, []uint64{high(1) | personalityQuery}, allow},
		{"personality ADDR_NO_RANDOMIZE", unix.SYS_PERSONALITY, []uint64{0x0040000}, deny(unix.EPERM)},
		{"personality READ_IMPLIES_EXEC", unix.SYS_PERSONALITY, []uint64{0x0400000}, deny(unix.EPERM)},

		{"unshare", unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, deny(unix.EPERM)},
		{"unshare nothing", unix.SYS_UNSHARE, []uint64{0}, deny(unix.EPERM)},
		{"keyctl", unix.SYS_KEYCTL, nil, deny(unix.EPERM)},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, nil, deny(unix.EPERM)},
		{"ptrace", unix.SYS_PTRACE, []uint64{unix.PTRACE_TRACEME}, deny(unix.EPERM)},
		{"mount", unix.SYS_MOUNT, nil, deny(unix.EPERM)},

		// The numbers of another architecture's calling convention are meaningless here.
		{"foreign architecture", unix.SYS_GETPID, nil, kill},
	}
	for _, f := range cloneNamespaceFlags {
		tests = append(tests, decision{"clone " + f.name, unix.SYS_CLONE, []uint64{f.flag | sigchld}, deny(unix.EPERM)})
	}
	v := vm(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audit := native.audit
			if tt.want == kill {
				audit = foreignArch()
			}
			if got := decide(t, v, audit, tt.nr, tt.args...); got != tt.want {
				t.Errorf("nr %d args %#x: got %s, want %s", tt.nr, tt.args, actionName(got), actionName(tt.want))
			}
		})
	}
}

var cloneNamespaceFlags = []struct {
	name string
	flag uint64
}{
	{"CLONE_NEWNS", unix.CLONE_NEWNS},
	{"CLONE_NEWUTS", unix.CLONE_NEWUTS},
	{"CLONE_NEWIPC", unix.CLONE_NEWIPC},
	{"CLONE_NEWUSER", unix.CLONE_NEWUSER},
	{"CLONE_NEWPID", unix.CLONE_NEWPID},
	{"CLONE_NEWNET", unix.CLONE_NEWNET},
	{"CLONE_NEWCGROUP", unix.CLONE_NEWCGROUP},
}

func foreignArch() uint32 {
	if native.audit == unix.AUDIT_ARCH_X86_64 {
		return unix.AUDIT_ARCH_I386
	}
	return unix.AUDIT_ARCH_ARM
}

func TestProgramX32(t *testing.T) {
	if native.x32Bit == 0 {
		t.Skip("no x32 ABI on this architecture")
	}
	v := vm(t)
	if got, want := decide(t, v, native.audit, native.x32Bit|unix.SYS_GETPID), deny(unix.ENOSYS); got != want {
		t.Errorf("x32 getpid: got %s, want %s", actionName(got), actionName(want))
	}
	// An x32 number must not be taken for the native call it encodes.
	if got, want := decide(t, v, native.audit, native.x32Bit|unix.SYS_SOCKET, unix.AF_INET), deny(unix.ENOSYS); got != want {
		t.Errorf("x32 socket: got %s, want %s", actionName(got), actionName(want))
	}
}

// TestProgramDeniesWholeCalls checks every system call denied without argument checks,
// whatever its arguments.
func TestProgramDeniesWholeCalls(t *testing.T) {
	v := vm(t)
	for _, name := range slices.Concat(dockerDenied, crossRunDenied) {
		nr, ok := native.sysnum[name]
		if !ok {
			continue
		}
		for _, args := range [][]uint64{nil, {^uint64(0), ^uint64(0), ^uint64(0)}} {
			if got := decide(t, v, native.audit, nr, args...); got != deny(unix.EPERM) {
				t.Errorf("%s (%d) args %#x: got %s, want ERRNO(EPERM)", name, nr, args, actionName(got))
			}
		}
	}
}

// TestSysnumTable checks that the table of this architecture names exactly the system
// calls of the rules, so that no name is silently skipped.
func TestSysnumTable(t *testing.T) {
	used := make(map[string]bool)
	for _, r := range rules {
		used[r.name] = true
		_, known := native.sysnum[r.name]
		if absent := slices.Contains(native.absent, r.name); known == absent {
			t.Errorf("%s: in the table: %v, listed absent: %v; want exactly one", r.name, known, absent)
		}
	}
	for name := range native.sysnum {
		if !used[name] {
			t.Errorf("%s: in the table but in no rule", name)
		}
	}
	for _, name := range native.absent {
		if !used[name] {
			t.Errorf("%s: listed absent but in no rule", name)
		}
	}
}

func TestProgramSize(t *testing.T) {
	filter, err := Program()
	if err != nil {
		t.Fatal(err)
	}
	if len(filter) == 0 || len(filter) > maxInstructions {
		t.Fatalf("Program has %d instructions, want 1 to %d", len(filter), maxInstructions)
	}
	t.Logf("%d instructions", len(filter))
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name string
		rule rule
	}{
		{"unknown system call", rule{name: "no_such_call", errno: unix.EPERM}},
		{"no errno", rule{name: "ioctl"}},
		{"errno out of range", rule{name: "ioctl", errno: 1 << 16}},
		{"argument out of range", rule{name: "ioctl", errno: unix.EPERM, when: []check{arg(6).in(1)}}},
		{"no values", rule{name: "ioctl", errno: unix.EPERM, when: []check{arg(1).in()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compile(native, []rule{tt.rule}); err == nil {
				t.Errorf("compile accepted %+v", tt.rule)
			}
		})
	}
	if _, err := compile(arch{}, rules); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("compile without a system call table: got %v, want errors.ErrUnsupported", err)
	}
}
