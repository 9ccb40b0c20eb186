//go:build linux

package seccomp

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxInstructions is the kernel's limit on the length of one filter (BPF_MAXINSNS).
const maxInstructions = 4096

// Install sets no_new_privs and installs the runbox filter on every thread of the
// calling process (SECCOMP_FILTER_FLAG_TSYNC), so that threads and children started
// afterwards inherit it. A filter cannot be removed: call Install in the process that is
// to be confined, once; every call stacks another copy.
//
// The error wraps the errno of prctl or seccomp: EINVAL when the kernel lacks
// CONFIG_SECCOMP_FILTER, EFAULT or EINVAL for a filter the kernel rejects.
func Install() error {
	filter, err := Program()
	if err != nil {
		return err
	}
	// no_new_privs belongs to a thread, and seccomp requires it on the calling thread;
	// TSYNC then copies both to the other threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: set no_new_privs: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return fmt.Errorf("seccomp: install filter: %w", errno)
	}
	if tid != 0 {
		// TSYNC names a thread that already runs a filter unrelated to ours.
		return fmt.Errorf("seccomp: install filter: thread %d cannot take it", tid)
	}
	return nil
}

// Program returns the assembled filter for the running architecture, as Install loads
// it: at most 4096 instructions that evaluate struct seccomp_data.
func Program() ([]unix.SockFilter, error) {
	raw, err := compile(native, rules)
	if err != nil {
		return nil, err
	}
	if len(raw) > maxInstructions {
		return nil, fmt.Errorf("seccomp: filter has %d instructions, the kernel takes at most %d",
			len(raw), maxInstructions)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return filter, nil
}
