package proc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/runboxhq/runbox/internal/lines"
)

// Defaults for the zero values of Cmd. Every buffer and wait is bounded by one of these.
const (
	// DefaultCaptureLimit is the bytes kept per stream (head and tail) by Capture(0) and
	// by a Cmd whose Stdout or Stderr is nil.
	DefaultCaptureLimit = 10 << 20
	// DefaultGrace is the time between the stop signal and SIGKILL.
	DefaultGrace = 5 * time.Second
	// DefaultDrainTimeout bounds the wait for the output pipes to close after the process
	// tree is gone (or out of reach): a daemon holding them never makes a call hang.
	DefaultDrainTimeout = 2 * time.Second
	// DefaultSendLimit is the bytes an interactive process buffers for stdin before Send
	// accepts less than it is given.
	DefaultSendLimit = 16 << 20
	// DefaultRecvLimit is the bytes per stream an interactive process buffers for Recv;
	// output beyond it is not queued (it is still captured) and is counted as dropped.
	DefaultRecvLimit = 16 << 20

	maxCaptureLimit = 1 << 30
)

// Containment is how the process tree is held so that it can be signaled and killed as
// a whole.
type Containment string

const (
	// ContainAuto (the zero value) uses a cgroup when this process can create one and a
	// process group otherwise.
	ContainAuto Containment = ""
	// ContainProcessGroup puts the child in a new process group. A descendant that calls
	// setsid or setpgid leaves it and escapes the kill.
	ContainProcessGroup Containment = "process_group"
	// ContainCgroup puts the child in a new cgroup (v2 with cgroup.kill, or the v1
	// freezer), which no descendant can leave. Start fails if none can be created.
	ContainCgroup Containment = "cgroup"
	// ContainNone leaves the child in our own process group; only it is signaled.
	ContainNone Containment = "none"
)

// Rlimit is a resource limit applied to the child before it executes (Linux).
type Rlimit struct {
	Resource int // such as unix.RLIMIT_NOFILE
	Cur, Max uint64
}

// Resources limits a process tree as a whole through its cgroup. Zero fields are
// unlimited.
type Resources struct {
	// Memory caps the tree's memory in bytes: anonymous memory, page cache and tmpfs
	// pages it wrote; swap is off. Past it the kernel's OOM killer kills a member.
	Memory int64
	// Pids caps the processes and threads alive at once; fork and clone beyond it fail
	// with EAGAIN.
	Pids int64
}

// Cmd describes one child process. Its zero value, given Args, is a sensible run:
// stdin from /dev/null, both output streams captured up to DefaultCaptureLimit, no
// timeout, SIGTERM then SIGKILL after DefaultGrace on cancellation, the tree contained
// (ContainAuto) and killed when the main process exits, and the child killed if this
// program dies.
//
// A Cmd may be started any number of times; Start copies what it needs. Do not change a
// Cmd while Start runs.
type Cmd struct {
	// Path is the program. When empty, Args[0] is looked up in PATH at Start.
	Path string
	// Args is argv, Args[0] included. Required.
	Args []string
	// Dir is the working directory; empty means ours.
	Dir string
	// Env replaces the environment when non-nil; nil inherits ours.
	Env []string
	// ExtraEnv entries ("K=V") are added over Env (or the inherited environment),
	// replacing variables of the same name.
	ExtraEnv []string

	// Stdin feeds the child. nil means /dev/null. An *os.File is passed to the child as
	// is; any other reader is copied through a pipe, and a child that exits without
	// reading it is not an error. See Bytes, String and FromFile.
	Stdin io.Reader
	// Stdout and Stderr list where each stream goes; several sinks at once are fine.
	// nil means Capture(0). An empty non-nil slice means Discard.
	Stdout, Stderr []Sink
	// Combined also keeps both streams interleaved in arrival order in
	// Result.Combined, bounded like a Capture of the stdout limit.
	Combined bool
	// Interactive gives the child a stdin pipe fed by Process.Send and Write, and queues
	// its output for Recv, RecvErr and Read. Stdin must be nil.
	Interactive bool

	// Timeout stops the process after this long (0: no timeout besides the context's).
	Timeout time.Duration
	// StopSignal is sent to the tree first on timeout or cancel (0: SIGTERM).
	StopSignal syscall.Signal
	// Grace is the wait between StopSignal and SIGKILL (0: DefaultGrace; < 0: SIGKILL at once).
	Grace time.Duration
	// DrainTimeout bounds the wait for the pipes after the tree is gone (0: DefaultDrainTimeout).
	DrainTimeout time.Duration
	// OutputLimit stops the process when either stream exceeds this many bytes; sinks
	// receive no byte past it (0: no limit).
	OutputLimit int64
	// StdoutLimit and StderrLimit, when set, replace OutputLimit for one stream.
	StdoutLimit, StderrLimit int64
	// Check makes Run return the result's *ExitError when the run did not succeed.
	Check bool

	// Containment selects how the tree is held (zero: ContainAuto).
	Containment Containment
	// KeepOrphans leaves descendants running when the main process exits by itself.
	// By default they are killed before Wait returns.
	KeepOrphans bool
	// SurviveParent lets the child outlive this program. By default it gets SIGKILL
	// when we die, even by SIGKILL.
	SurviveParent bool
	// Setsid starts the child in a new session (and so a new process group), without a
	// controlling terminal.
	Setsid bool
	// Credential runs the child as another user (needs privilege).
	Credential *syscall.Credential
	// SysProcAttr, when set, is the base of the attributes the child starts with
	// (namespaces, id mappings); the fields proc manages (Setpgid, Setsid, Pdeathsig,
	// Credential, PidFD, the cgroup) are set over a copy of it.
	SysProcAttr *syscall.SysProcAttr
	// ExtraFiles are open files the child inherits as fds 3, 4, …, as in os/exec.
	ExtraFiles []*os.File
	// Resources, when set, limits the tree through a cgroup made for this run alone
	// (v1 or v2): cgroup containment becomes mandatory, and Result.Usage reports the
	// tree's CPU time, peak memory and OOM kills.
	Resources *Resources
	// Rlimits are applied to the child before it executes. Setting any costs one
	// extra exec (a small shim in this binary applies them).
	Rlimits []Rlimit

	// Limiter, when set, bounds how many children run at once; Start waits for a slot
	// or the context.
	Limiter *Limiter
	// Logger receives debug records of the lifecycle; nil discards.
	Logger *slog.Logger
}

// Command returns a Cmd that runs name with args, like exec.Command.
func Command(name string, args ...string) *Cmd {
	return &Cmd{Args: append([]string{name}, args...)}
}

// Run starts the command and waits for it. The error is a *StartError when it could
// not start; otherwise nil, or with Check set the result's Err(). The Result is never
// nil.
func Run(ctx context.Context, name string, args ...string) (*Result, error) {
	return Command(name, args...).Run(ctx)
}

// Run starts c and waits for it; see the package function Run.
func (c *Cmd) Run(ctx context.Context) (*Result, error) {
	// The caller waits anyway, so its goroutine forks the child from its own locked
	// thread and supervises it inline: no hand-off to a spawner thread or a supervisor
	// goroutine. The locked thread outlives the child, as Pdeathsig requires. Past
	// maxLockedRuns concurrent runs, the shared spawner threads are used instead, so
	// thousands of runs do not pin thousands of threads.
	inline := lockedRuns.Add(1) <= maxLockedRuns
	defer lockedRuns.Add(-1)
	if inline {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	p, err := c.begin(ctx, inline)
	if err != nil {
		return startFailed(c), err
	}
	if inline {
		p.runInline(ctx, c.Timeout, c.streamLimit(Stdout) > 0 || c.streamLimit(Stderr) > 0)
	} else {
		go p.waitExited()
		p.watch(ctx, c.Timeout)
		p.finish()
	}
	res, err := p.result, p.err
	if err == nil && c.Check {
		err = res.Err()
	}
	return res, err
}

// maxLockedRuns bounds the runs that pin their caller's thread; see Cmd.Run.
const maxLockedRuns = 256

var lockedRuns atomic.Int64

// Output runs c with Check set and returns its captured stdout, like
// exec.Cmd.Output.
func (c *Cmd) Output(ctx context.Context) ([]byte, error) {
	cc := *c
	cc.Check = true
	res, err := cc.Run(ctx)
	return res.Stdout, err
}

func startFailed(c *Cmd) *Result {
	return &Result{Argv: c.Args, Status: StatusStartError, ExitCode: -1, Started: time.Now()}
}

// Bytes returns stdin that feeds b.
func Bytes(b []byte) io.Reader { return bytes.NewReader(b) }

// String returns stdin that feeds s.
func String(s string) io.Reader { return strings.NewReader(s) }

// FromFile returns stdin read from the named file, opened at Start and passed to the
// child directly (no copying through this process).
func FromFile(path string) io.Reader { return &fileInput{path: path} }

type fileInput struct{ path string }

// Read fails: the file is opened by Start and handed to the child.
func (in *fileInput) Read([]byte) (int, error) { return 0, errFileInput }

var errFileInput = errors.New("proc: FromFile input is read by the child, not by Read")

// Sink is one destination of an output stream. Build one with Capture, Writer, ToFile,
// AppendFile, File, Discard, Parent or Lines.
type Sink struct {
	kind   sinkKind
	limit  int64
	w      io.Writer
	path   string
	append bool
	lines  func(Line)
	file   *os.File
}

type sinkKind uint8

const (
	sinkDiscard sinkKind = iota
	sinkCapture
	sinkWriter
	sinkFile
	sinkParent
	sinkLines
	sinkOpenFile
)

// Capture keeps up to limit bytes of the stream (head and tail) for the Result;
// limit <= 0 means DefaultCaptureLimit.
func Capture(limit int64) Sink { return Sink{kind: sinkCapture, limit: limit} }

// Writer copies the stream to w (a tee). Writes happen on one goroutine per stream; a
// slow writer slows the child. A writer that fails is dropped and its error returned
// from Wait.
func Writer(w io.Writer) Sink { return Sink{kind: sinkWriter, w: w} }

// ToFile writes the stream to the named file, created or truncated at Start.
func ToFile(path string) Sink { return Sink{kind: sinkFile, path: path} }

// AppendFile appends the stream to the named file, created if missing.
func AppendFile(path string) Sink { return Sink{kind: sinkFile, path: path, append: true} }

// File sends the stream to f, an open file or the write end of a pipe the caller
// reads. When it is the stream's only sink (and no output limit, Interactive or
// Combined applies), the child writes to f itself, as with an *os.File in os/exec:
// nothing of this process stands between them. Otherwise the stream is copied to f
// like Writer. f stays open; the caller closes its copy.
func File(f *os.File) Sink { return Sink{kind: sinkOpenFile, file: f, w: f} }

// Discard drops the stream.
func Discard() Sink { return Sink{kind: sinkDiscard} }

// Parent sends the stream to this program's own stdout or stderr. When it is the
// stream's only sink, the child writes to it directly.
func Parent() Sink { return Sink{kind: sinkParent} }

// Lines calls fn once per line of the stream, from the stream's goroutine. See Line.
func Lines(fn func(Line)) Sink { return Sink{kind: sinkLines, lines: fn} }

// Stream names an output stream.
type Stream uint8

const (
	Stdout Stream = 1
	Stderr Stream = 2
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// LineKind says how a line ended.
type LineKind = lines.Kind

// The kinds of Line.
const (
	LineFull         = lines.Full         // ended by "\n" or "\r\n"
	LineUpdate       = lines.Update       // ended by a lone "\r": a progress update
	LinePartial      = lines.Partial      // a piece of a line longer than lines.DefaultMaxLen
	LineUnterminated = lines.Unterminated // the stream ended without a newline
)

// Line is one line of output, without its terminator.
type Line struct {
	Stream Stream
	Text   string
	Kind   LineKind
	Time   time.Time
}

// Limiter bounds how many children run at once. Its zero value is not usable; use
// NewLimiter.
type Limiter struct{ slots chan struct{} }

// NewLimiter returns a Limiter admitting n children at once (n < 1 is taken as 1).
func NewLimiter(n int) *Limiter { return &Limiter{slots: make(chan struct{}, max(n, 1))} }

func (l *Limiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (l *Limiter) release() { <-l.slots }

// InUse reports how many slots are taken.
func (l *Limiter) InUse() int { return len(l.slots) }

// streamLimit is the output limit of one stream (0: none).
func (c *Cmd) streamLimit(which Stream) int64 {
	switch {
	case which == Stdout && c.StdoutLimit > 0:
		return c.StdoutLimit
	case which == Stderr && c.StderrLimit > 0:
		return c.StderrLimit
	}
	return c.OutputLimit
}
