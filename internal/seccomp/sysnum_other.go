//go:build linux && !amd64 && !arm64

package seccomp

// native has no system call table: compile reports the architecture as unsupported.
var native arch
