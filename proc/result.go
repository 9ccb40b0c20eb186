package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/runboxhq/runbox/api"
	"golang.org/x/sys/unix"
)

// Status says how a run ended. It is what the child did, or what we did to it; it is
// never an error of ours, except StartError.
type Status string

const (
	StatusOK          Status = "ok"           // exited 0
	StatusExitError   Status = "exit_error"   // exited non-zero
	StatusTimeout     Status = "timeout"      // Cmd.Timeout or the context's deadline passed; we stopped it
	StatusCanceled    Status = "canceled"     // the context was canceled or Stop was called; we stopped it
	StatusSignaled    Status = "signaled"     // a signal we did not send ended it
	StatusOutputLimit Status = "output_limit" // it wrote more than Cmd.OutputLimit; we stopped it
	StatusStartError  Status = "start_error"  // it never ran; see StartError
)

// Result is what one child process did. Exactly one of ExitCode and Signal is
// meaningful: ExitCode is -1 when Signal is set, and Signal is 0 when ExitCode is.
type Result struct {
	Argv     []string
	Pid      int
	Status   Status
	ExitCode int
	Signal   syscall.Signal

	Started  time.Time
	Duration time.Duration
	UserCPU  time.Duration
	SysCPU   time.Duration
	// MaxRSS is the largest resident set, in bytes, of the child or a descendant it
	// waited for. Go starts children with vfork, and Linux counts the parent's memory
	// until the child calls exec: for a small child of a large parent this is the
	// parent's size.
	MaxRSS int64

	// Captured output: the head and tail of each stream when it was larger than the
	// capture limit, with the Truncated flags set; *Bytes count everything the child wrote.
	Stdout, Stderr                   []byte
	StdoutTruncated, StderrTruncated bool
	StdoutBytes, StderrBytes         int64
	// Combined holds both streams in the order the parent received them, when
	// Cmd.Combined was set.
	Combined          []byte
	CombinedTruncated bool

	// Usage is the whole tree's use of resources, when Cmd.Resources gave it a cgroup.
	Usage *Usage

	// Containment is how the process tree was held and killed.
	Containment Containment
	// OutputIncomplete is set when processes outside our reach (a setsid daemon when
	// contained by process group) still held the pipes when the drain bound ran out.
	OutputIncomplete bool
}

// Usage is what a process tree used, read from its cgroup.
type Usage struct {
	CPU        time.Duration // user and system time of every process and thread
	MemoryPeak int64         // the largest memory use, in bytes
	OOMKills   int           // processes the kernel's OOM killer killed
}

// Success reports whether the process exited 0 on its own.
func (r *Result) Success() bool { return r != nil && r.Status == StatusOK }

// Err returns nil when the run succeeded and an *ExitError describing it otherwise.
// A Cmd with Check set returns this from Run.
func (r *Result) Err() error {
	if r == nil || r.Status == StatusOK || r.Status == StatusStartError {
		return nil
	}
	return &ExitError{Result: r}
}

// Wire converts the result to its JSON form.
func (r *Result) Wire() api.ProcessResult {
	w := api.ProcessResult{
		Argv:             r.Argv,
		Pid:              r.Pid,
		Status:           string(r.Status),
		TimedOut:         r.Status == StatusTimeout,
		DurationMS:       ms(r.Duration),
		UserCPUMS:        ms(r.UserCPU),
		SysCPUMS:         ms(r.SysCPU),
		MaxRSSBytes:      r.MaxRSS,
		StdoutTruncated:  r.StdoutTruncated,
		StderrTruncated:  r.StderrTruncated,
		StdoutBytes:      r.StdoutBytes,
		StderrBytes:      r.StderrBytes,
		Containment:      string(r.Containment),
		OutputIncomplete: r.OutputIncomplete,
	}
	w.Stdout, w.StdoutEncoding = api.EncodeText(string(r.Stdout))
	w.Stderr, w.StderrEncoding = api.EncodeText(string(r.Stderr))
	switch {
	case r.Status == StatusStartError:
	case r.Signal != 0:
		s := SignalName(r.Signal)
		w.Signal = &s
	default:
		c := r.ExitCode
		w.ExitCode = &c
	}
	return w
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// SignalName returns the conventional name of sig, such as "SIGKILL", or "SIG%d" for a
// number Linux does not name.
func SignalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// ParseSignal accepts "SIGTERM", "TERM", "term" or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if sig, ok := signalsByName[u]; ok {
		return sig, nil
	}
	if sig, ok := signalsByName["SIG"+u]; ok {
		return sig, nil
	}
	var n int
	if _, err := fmt.Sscanf(u, "%d", &n); err == nil && fmt.Sprint(n) == u && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("proc: unknown signal %q", s)
}

var signalsByName = map[string]syscall.Signal{
	"SIGABRT": syscall.SIGABRT, "SIGALRM": syscall.SIGALRM, "SIGBUS": syscall.SIGBUS,
	"SIGCHLD": syscall.SIGCHLD, "SIGCONT": syscall.SIGCONT, "SIGFPE": syscall.SIGFPE,
	"SIGHUP": syscall.SIGHUP, "SIGILL": syscall.SIGILL, "SIGINT": syscall.SIGINT,
	"SIGKILL": syscall.SIGKILL, "SIGPIPE": syscall.SIGPIPE, "SIGPROF": syscall.SIGPROF,
	"SIGQUIT": syscall.SIGQUIT, "SIGSEGV": syscall.SIGSEGV, "SIGSTOP": syscall.SIGSTOP,
	"SIGSYS": syscall.SIGSYS, "SIGTERM": syscall.SIGTERM, "SIGTRAP": syscall.SIGTRAP,
	"SIGTSTP": syscall.SIGTSTP, "SIGTTIN": syscall.SIGTTIN, "SIGTTOU": syscall.SIGTTOU,
	"SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2, "SIGVTALRM": syscall.SIGVTALRM,
	"SIGWINCH": syscall.SIGWINCH, "SIGXCPU": syscall.SIGXCPU, "SIGXFSZ": syscall.SIGXFSZ,
}

// Sentinels for errors.Is. An *ExitError unwraps to the one matching its status; a
// *StartError to the one matching its cause.
var (
	ErrExitStatus  = errors.New("proc: non-zero exit status")
	ErrTimeout     = errors.New("proc: timed out")
	ErrCanceled    = errors.New("proc: canceled")
	ErrSignaled    = errors.New("proc: killed by signal")
	ErrOutputLimit = errors.New("proc: output limit exceeded")

	ErrNotFound   = errors.New("proc: executable not found")
	ErrPermission = errors.New("proc: permission denied")
	ErrExecFormat = errors.New("proc: exec format error")
	ErrStart      = errors.New("proc: could not start") // any other start failure
	// ErrNoCgroup is wrapped when Cmd.Resources asked for a cgroup that could not be
	// made (no cgroup file system, no privilege, no delegation).
	ErrNoCgroup = errors.New("proc: no cgroup for Resources")

	ErrNotInteractive = errors.New("proc: process was not started with Cmd.Interactive")
	ErrInputClosed    = errors.New("proc: input closed")
	ErrSendFull       = errors.New("proc: send buffer full")
)

// ExitError reports a run that did not succeed: a non-zero exit, a signal, a timeout,
// a cancellation or an exceeded output limit. Its message carries the head and tail of
// stderr, so a log line says why without a second lookup.
type ExitError struct {
	Result *Result
}

// stderrInError bounds how much of stderr an error message quotes, head and tail each.
const stderrInError = 512

func (e *ExitError) Error() string {
	r := e.Result
	var b strings.Builder
	fmt.Fprintf(&b, "proc: %s: ", argv0(r.Argv))
	switch r.Status {
	case StatusTimeout:
		b.WriteString("timed out")
	case StatusCanceled:
		b.WriteString("canceled")
	case StatusOutputLimit:
		b.WriteString("output limit exceeded")
	case StatusSignaled:
		fmt.Fprintf(&b, "killed by %s", SignalName(r.Signal))
	default:
		fmt.Fprintf(&b, "exit status %d", r.ExitCode)
	}
	if (r.Status == StatusTimeout || r.Status == StatusCanceled || r.Status == StatusOutputLimit) && r.Signal != 0 {
		fmt.Fprintf(&b, " (%s)", SignalName(r.Signal))
	}
	if s := strings.TrimSpace(string(headTail(r.Stderr, stderrInError))); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

func (e *ExitError) Unwrap() error {
	switch e.Result.Status {
	case StatusTimeout:
		return ErrTimeout
	case StatusCanceled:
		return ErrCanceled
	case StatusSignaled:
		return ErrSignaled
	case StatusOutputLimit:
		return ErrOutputLimit
	}
	return ErrExitStatus
}

func argv0(argv []string) string {
	if len(argv) == 0 {
		return "?"
	}
	return argv[0]
}

// headTail returns b when it is at most 2n bytes, else its first and last n bytes joined
// by an elision mark.
func headTail(b []byte, n int) []byte {
	if len(b) <= 2*n {
		return b
	}
	out := make([]byte, 0, 2*n+5)
	out = append(out, b[:n]...)
	out = append(out, " … "...)
	return append(out, b[len(b)-n:]...)
}

// StartError reports a process that could not be started. When Op is empty the program
// itself could not be executed, and the error unwraps to ErrNotFound, ErrPermission,
// ErrExecFormat or ErrStart; when Op names a preparation step ("stdin", "stdout",
// "stderr", "dir", "containment", "args", or "wait" for a context that ended before the
// start), it unwraps to ErrStart. It always unwraps to the underlying error too.
type StartError struct {
	Path string
	Op   string
	Err  error
}

func (e *StartError) Error() string {
	if e.Op != "" {
		return fmt.Sprintf("proc: start %s: %s: %v", e.Path, e.Op, e.Err)
	}
	return fmt.Sprintf("proc: start %s: %v", e.Path, e.Err)
}

func (e *StartError) Unwrap() []error {
	if e.Op != "" {
		return []error{ErrStart, e.Err}
	}
	return []error{startKind(e.Err), e.Err}
}

func startKind(err error) error {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT):
		return ErrNotFound
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EISDIR):
		return ErrPermission
	case errors.Is(err, syscall.ENOEXEC):
		return ErrExecFormat
	}
	return ErrStart
}
