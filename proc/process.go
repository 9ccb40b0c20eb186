package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/internal/lines"
)

// Process is a running child started by Cmd.Start. All its methods are safe for
// concurrent use. Its result is produced once, by its own goroutine, whether or not
// anyone calls Wait.
type Process struct {
	argv        []string
	os          *os.Process
	pidfd       *os.File // async mode: the pidfd on the poller; nil when unavailable
	rawPidfd    int      // inline mode: a blocking pidfd; -1 when unavailable
	started     time.Time
	tree        tree
	log         *slog.Logger
	stopSig     syscall.Signal
	grace       time.Duration
	drain       time.Duration
	keepOrphans bool
	limiter     *Limiter

	out, errOut *outStream
	combined    *capture
	input       *inputFeed // nil unless stdin is a pipe
	stopReq     chan Status
	limitHit    atomic.Bool   // set by a pump before it asks for the stop, so no exit can race it
	exited      chan struct{} // the main process exited (not necessarily reaped)
	done        chan struct{} // the result is ready

	mu       sync.Mutex
	reason   Status // why we stopped it; empty when it ended by itself
	ended    time.Time
	state    *os.ProcessState
	reaped   bool
	released bool // the containment was given back; the tree must not be signaled
	result   *Result
	usage    *Usage // read from the resource cgroup before it is released
	err      error
}

// devNull is opened read-write once and shared: it serves as stdin and as a discarded output.
var devNull = sync.OnceValues(func() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_RDWR, 0) })

// Start starts the command. ctx governs the process's life: when it is done the tree is
// stopped (StopSignal, then SIGKILL after Grace), as with a timeout. The error is a
// *StartError.
func (c *Cmd) Start(ctx context.Context) (*Process, error) {
	p, err := c.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	go p.waitExited()
	go func() {
		p.watch(ctx, c.Timeout)
		p.finish()
	}()
	return p, nil
}

// runInline waits for a process begun inline, on the caller's locked thread: a blocking
// waitid, as os/exec does, with a watchdog goroutine only when there is something to
// watch (a context that can end, a timeout, an output limit).
func (p *Process) runInline(ctx context.Context, timeout time.Duration, outputLimit bool) {
	var watched chan struct{}
	if ctx.Done() != nil || timeout > 0 || outputLimit {
		watched = make(chan struct{})
		go func() {
			p.watch(ctx, timeout)
			close(watched)
		}()
	}
	p.waitExitedBlocking()
	if watched != nil {
		<-watched // the watchdog must not signal the tree once finish releases it
	}
	p.finish()
}

// begin starts the process; the caller runs p.supervise. With inline set, the caller's
// goroutine is locked to its thread and forks from it; otherwise a spawner thread does.
func (c *Cmd) begin(ctx context.Context, inline bool) (*Process, error) {
	if len(c.Args) == 0 {
		return nil, &StartError{Op: "args", Err: errors.New("empty Args")}
	}
	path := c.Path
	if path == "" {
		var err error
		if path, err = exec.LookPath(c.Args[0]); err != nil {
			return nil, &StartError{Path: c.Args[0], Err: err}
		}
	}
	if c.Interactive && c.Stdin != nil {
		return nil, &StartError{Path: path, Op: "stdin", Err: errors.New("Interactive and Stdin are exclusive")}
	}
	if err := context.Cause(ctx); err != nil {
		return nil, &StartError{Path: path, Op: "wait", Err: err}
	}
	if c.Limiter != nil {
		if err := c.Limiter.acquire(ctx); err != nil {
			return nil, &StartError{Path: path, Op: "wait", Err: err}
		}
	}
	p, err := c.start(path, inline)
	if err != nil {
		if c.Limiter != nil {
			c.Limiter.release()
		}
		if se, ok := errors.AsType[*setupError](err); ok {
			return nil, &StartError{Path: path, Op: se.op, Err: se.err}
		}
		return nil, &StartError{Path: path, Err: err}
	}
	return p, nil
}

// setupError is a failure to prepare the run (its I/O, directory or containment),
// as opposed to a failure to execute the program.
type setupError struct {
	op  string
	err error
}

func (e *setupError) Error() string { return e.op + ": " + e.err.Error() }

// setup collects what must be closed or undone whatever happens to the start.
type setup struct {
	childFiles []*os.File // our copies of the child's ends, closed after the fork
	parentEnds []*os.File // our ends, closed if the start fails
}

func (s *setup) closeChild() {
	for _, f := range s.childFiles {
		f.Close()
	}
}

func (s *setup) fail() {
	s.closeChild()
	for _, f := range s.parentEnds {
		f.Close()
	}
}

func (c *Cmd) start(path string, inline bool) (*Process, error) {
	p := &Process{
		argv:        c.Args,
		log:         c.Logger,
		stopSig:     c.StopSignal,
		grace:       c.Grace,
		drain:       c.DrainTimeout,
		keepOrphans: c.KeepOrphans,
		limiter:     c.Limiter,
		stopReq:     make(chan Status, 2),
		exited:      make(chan struct{}),
		done:        make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.stopSig == 0 {
		p.stopSig = syscall.SIGTERM
	}
	if p.grace == 0 {
		p.grace = DefaultGrace
	}
	if p.drain <= 0 {
		p.drain = DefaultDrainTimeout
	}

	if c.Dir != "" {
		if fi, err := os.Stat(c.Dir); err != nil {
			return nil, &setupError{"dir", err}
		} else if !fi.IsDir() {
			return nil, &setupError{"dir", fmt.Errorf("%s: not a directory", c.Dir)}
		}
	}
	var st setup
	stdin, err := c.stdinFile(p, &st)
	if err != nil {
		st.fail()
		return nil, &setupError{"stdin", err}
	}
	if c.Combined {
		p.combined = newCapture(captureLimit(c.Stdout))
	}
	stdout, err := c.outputFile(p, &st, Stdout)
	if err != nil {
		st.fail()
		return nil, &setupError{"stdout", err}
	}
	stderr, err := c.outputFile(p, &st, Stderr)
	if err != nil {
		st.fail()
		return nil, &setupError{"stderr", err}
	}

	sys := &syscall.SysProcAttr{}
	if c.SysProcAttr != nil {
		*sys = *c.SysProcAttr
	}
	sys.Setsid, sys.Credential = c.Setsid, c.Credential
	if !c.Setsid && c.Containment != ContainNone {
		sys.Setpgid = true
	}
	if !c.SurviveParent {
		sys.Pdeathsig = syscall.SIGKILL
	}
	pidfd := -1
	sys.PidFD = &pidfd

	env := c.environ()
	argv := c.Args
	if len(c.Rlimits) > 0 {
		var shimVar string
		path, argv, shimVar = shimArgv(path, argv, c.Rlimits)
		env = append(env, shimVar)
	}
	req := &spawnRequest{
		path: path,
		argv: argv,
		attr: &os.ProcAttr{Dir: c.Dir, Env: env, Files: append([]*os.File{stdin, stdout, stderr}, c.ExtraFiles...), Sys: sys},
	}
	var box *cgroupBox
	if c.Resources != nil && c.Containment != ContainAuto && c.Containment != ContainCgroup {
		st.fail()
		return nil, &setupError{"containment", fmt.Errorf("proc: Resources need cgroup containment, not %q", c.Containment)}
	}
	if c.Containment == ContainAuto || c.Containment == ContainCgroup {
		if box, err = prepareCgroup(c.Containment, c.Resources, sys, req); err != nil {
			st.fail()
			return nil, &setupError{"containment", err}
		}
	}

	p.started = time.Now()
	osp, err := spawn(req, !inline && (!c.SurviveParent || req.join != nil))
	st.closeChild()
	if err != nil {
		st.fail()
		if box != nil {
			box.release()
		}
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return nil, err
	}
	p.os = osp
	p.rawPidfd = -1
	switch {
	case pidfd < 0:
	case inline:
		p.rawPidfd = pidfd
	case unix.SetNonblock(pidfd, true) == nil:
		p.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
	default:
		unix.Close(pidfd)
	}
	switch {
	case box != nil:
		box.group = groupTree{pgid: osp.Pid}
		p.tree = box
	case c.Containment == ContainNone:
		p.tree = leaderTree{p: osp}
	default:
		p.tree = groupTree{pgid: osp.Pid}
	}
	p.log.Debug("proc: started", "pid", osp.Pid, "argv", c.Args, "containment", p.tree.containment())

	for _, s := range []*outStream{p.out, p.errOut} {
		if s != nil && s.r != nil {
			go s.pump()
		} else if s != nil {
			close(s.done)
		}
	}
	if p.input != nil {
		go p.input.run()
	}
	return p, nil
}

func (c *Cmd) environ() []string {
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	if len(c.ExtraEnv) == 0 {
		return env
	}
	extra := make(map[string]bool, len(c.ExtraEnv))
	for _, kv := range c.ExtraEnv {
		k, _, _ := strings.Cut(kv, "=")
		extra[k] = true
	}
	out := make([]string, 0, len(env)+len(c.ExtraEnv))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !extra[k] {
			out = append(out, kv)
		}
	}
	return append(out, c.ExtraEnv...)
}

func (c *Cmd) stdinFile(p *Process, st *setup) (*os.File, error) {
	switch in := c.Stdin.(type) {
	case nil:
		if !c.Interactive {
			return devNull()
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		st.childFiles = append(st.childFiles, r)
		st.parentEnds = append(st.parentEnds, w)
		p.input = newInputFeed(w, nil, DefaultSendLimit)
		return r, nil
	case *os.File:
		return in, nil
	case *fileInput:
		f, err := os.Open(in.path)
		if err != nil {
			return nil, err
		}
		st.childFiles = append(st.childFiles, f)
		return f, nil
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		st.childFiles = append(st.childFiles, r)
		st.parentEnds = append(st.parentEnds, w)
		p.input = newInputFeed(w, in, 0)
		return r, nil
	}
}

func captureLimit(sinks []Sink) int64 {
	for _, s := range sinks {
		if s.kind == sinkCapture {
			return s.limit
		}
	}
	return 0
}

// outputFile returns the file the child writes the stream to: a sink's own file when
// that is the only destination, else a pipe read by a pump.
func (c *Cmd) outputFile(p *Process, st *setup, which Stream) (*os.File, error) {
	sinks := c.Stdout
	parent := os.Stdout
	if which == Stderr {
		sinks, parent = c.Stderr, os.Stderr
	}
	if sinks == nil {
		sinks = []Sink{Capture(0)}
	}
	s := &outStream{which: which, done: make(chan struct{}), combined: p.combined}
	s.limit.Store(c.streamLimit(which))
	if which == Stdout {
		p.out = s
	} else {
		p.errOut = s
	}
	s.onLimit = func() {
		p.limitHit.Store(true)
		p.requestStop(StatusOutputLimit)
	}
	direct := s.limit.Load() == 0 && !c.Interactive && !c.Combined
	if direct && len(sinks) == 0 {
		return devNull()
	}
	if direct && len(sinks) == 1 {
		switch sinks[0].kind {
		case sinkDiscard:
			return devNull()
		case sinkParent:
			return parent, nil
		case sinkOpenFile:
			if sinks[0].file == nil {
				return nil, fmt.Errorf("%s: File(nil)", which)
			}
			return sinks[0].file, nil
		case sinkFile:
			f, err := openSinkFile(sinks[0])
			if err != nil {
				return nil, err
			}
			st.childFiles = append(st.childFiles, f)
			return f, nil
		}
	}
	var lineFns []func(Line)
	for _, sk := range sinks {
		switch sk.kind {
		case sinkCapture:
			if s.capture == nil {
				s.capture = newCapture(sk.limit)
			}
		case sinkWriter, sinkOpenFile:
			if sk.w == nil || sk.kind == sinkOpenFile && sk.file == nil {
				return nil, fmt.Errorf("%s: a nil Writer or File sink", which)
			}
			s.writers = append(s.writers, sk.w)
		case sinkParent:
			s.writers = append(s.writers, parent)
		case sinkFile:
			f, err := openSinkFile(sk)
			if err != nil {
				return nil, err
			}
			s.opened = append(s.opened, f)
			st.parentEnds = append(st.parentEnds, f)
			s.writers = append(s.writers, f)
		case sinkLines:
			if sk.lines == nil {
				return nil, fmt.Errorf("%s: Lines(nil)", which)
			}
			lineFns = append(lineFns, sk.lines)
		}
	}
	if len(lineFns) > 0 {
		s.split = lines.New(0, s.lineFanout(lineFns))
	}
	if c.Interactive {
		s.recv = newRecvQueue(DefaultRecvLimit)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.r = r
	st.parentEnds = append(st.parentEnds, r)
	st.childFiles = append(st.childFiles, w)
	return w, nil
}

func openSinkFile(sk Sink) (*os.File, error) {
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if sk.append {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(sk.path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Pid returns the process id of the main process.
func (p *Process) Pid() int { return p.os.Pid }

// Done is closed when the result is ready: the main process has exited, the tree has
// been killed (unless KeepOrphans) and the output drained.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the result, or for ctx. ctx bounds only the wait: the process keeps
// running (use Stop to end it). The error is a sink or input error, if any.
func (p *Process) Wait(ctx context.Context) (*Result, error) {
	select {
	case <-p.done:
		return p.result, p.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Signal sends sig to the main process only. It is safe against pid reuse (pidfd).
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.os.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// SignalTree sends sig to every process of the tree that the containment reaches.
func (p *Process) SignalTree(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return nil // the tree is gone, and its cgroup may serve another run by now
	}
	return p.tree.signal(sig)
}

// Stop ends the process as a timeout would: StopSignal to the tree, SIGKILL after Grace.
// It returns the result, or ctx's error if ctx ends first (the stop goes on).
// Stopping a finished process just returns its result.
func (p *Process) Stop(ctx context.Context) (*Result, error) {
	p.requestStop(StatusCanceled)
	return p.Wait(ctx)
}

func (p *Process) requestStop(st Status) {
	select {
	case p.stopReq <- st:
	default:
	}
}

// Snapshot is a point-in-time view of a process.
type Snapshot struct {
	Pid                      int
	Running                  bool
	Started                  time.Time
	Elapsed                  time.Duration
	Stopping                 Status // the reason when a stop is under way
	StdoutBytes, StderrBytes int64
	// Stdout and Stderr are copies of what is captured so far (nil without a Capture sink).
	Stdout, Stderr []byte
}

// Status returns a snapshot without blocking on the process.
func (p *Process) Status() Snapshot {
	s := Snapshot{Pid: p.os.Pid, Started: p.started}
	p.mu.Lock()
	s.Stopping = p.reason
	ended := p.ended
	p.mu.Unlock()
	select {
	case <-p.exited:
		s.Elapsed = ended.Sub(p.started)
	default:
		s.Running = true
		s.Elapsed = time.Since(p.started)
	}
	s.StdoutBytes, s.Stdout = snap(p.out)
	s.StderrBytes, s.Stderr = snap(p.errOut)
	return s
}

func snap(s *outStream) (int64, []byte) {
	if s == nil {
		return 0, nil
	}
	var b []byte
	if s.capture != nil {
		b = s.capture.snapshot()
	}
	return s.total.Load(), b
}

// waitExited closes exited when the main process has exited, without reaping it where
// pidfd allows, so that its pid and process group stay reserved until the tree is killed.
func (p *Process) waitExited() {
	if p.pidfd != nil && waitPidfd(p.pidfd) == nil {
		p.markEnded()
		return
	}
	state, err := p.os.Wait()
	p.mu.Lock()
	p.state, p.reaped = state, true
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("proc: wait: %w", err)
	}
	p.mu.Unlock()
	p.markEnded()
}

// waitExitedBlocking is waitExited for the inline mode: it blocks this thread.
func (p *Process) waitExitedBlocking() {
	if p.rawPidfd >= 0 {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PIDFD, p.rawPidfd, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
		unix.Close(p.rawPidfd)
		p.rawPidfd = -1
		p.markEnded()
		return
	}
	p.waitExited()
}

func (p *Process) markEnded() {
	p.mu.Lock()
	p.ended = time.Now()
	p.mu.Unlock()
	close(p.exited)
}

// waitPidfd parks on the poller (no thread held) until the pidfd's process has exited.
func waitPidfd(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		werr = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
		if werr == unix.EINTR || werr == unix.EAGAIN {
			werr = nil
			return false
		}
		return werr != nil || info.Signo != 0
	})
	if err != nil {
		return err
	}
	return werr
}

// watch runs the termination policy (timeout, context, Stop, output limit, grace then
// SIGKILL) until the main process has exited.
func (p *Process) watch(ctx context.Context, timeout time.Duration) {
	var timeoutC, graceC <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timeoutC = t.C
	}
	ctxDone := ctx.Done()
	for {
		select {
		case <-p.exited:
			return
		case <-ctxDone:
			ctxDone = nil
			st := StatusCanceled
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				st = StatusTimeout
			}
			graceC = p.beginStop(st, graceC)
		case <-timeoutC:
			timeoutC = nil
			graceC = p.beginStop(StatusTimeout, graceC)
		case st := <-p.stopReq:
			graceC = p.beginStop(st, graceC)
		case <-graceC:
			graceC = nil
			p.log.Debug("proc: grace over, killing", "pid", p.os.Pid)
			if err := p.tree.kill(); err != nil {
				p.log.Debug("proc: kill", "pid", p.os.Pid, "err", err)
			}
		}
	}
}

// beginStop starts the termination policy once; later reasons are ignored.
func (p *Process) beginStop(st Status, graceC <-chan time.Time) <-chan time.Time {
	p.mu.Lock()
	if p.reason != "" {
		p.mu.Unlock()
		return graceC
	}
	p.reason = st
	p.mu.Unlock()
	p.log.Debug("proc: stopping", "pid", p.os.Pid, "reason", st, "signal", p.stopSig)
	if p.grace < 0 || p.stopSig == syscall.SIGKILL {
		_ = p.tree.kill()
		return nil
	}
	if err := p.tree.signal(p.stopSig); err != nil {
		p.log.Debug("proc: signal", "pid", p.os.Pid, "err", err)
	}
	return time.After(p.grace)
}

// finish runs once the main process has exited: it kills what is left of the tree,
// reaps, drains the pipes within the bound, frees the containment and builds the result.
func (p *Process) finish() {
	p.mu.Lock()
	stopped := p.reason != ""
	p.mu.Unlock()
	if stopped || !p.keepOrphans {
		if box, ok := p.tree.(*cgroupBox); ok && !stopped {
			// The common case is an empty cgroup; don't pay for a freeze.
			if box.occupied() {
				_ = box.kill()
			} else {
				box.vacated = true
			}
		} else {
			_ = p.tree.kill()
		}
	}
	if !p.reaped {
		state, err := p.os.Wait()
		p.mu.Lock()
		p.state = state
		if err != nil && p.err == nil {
			p.err = fmt.Errorf("proc: wait: %w", err)
		}
		p.mu.Unlock()
	}
	if p.pidfd != nil {
		p.pidfd.Close()
	}
	if p.input != nil {
		p.input.abandon()
	}
	incomplete := p.drainOutput()
	p.mu.Lock()
	if p.reason == "" && p.limitHit.Load() {
		// The last bytes, read after the exit, went past the limit.
		p.reason = StatusOutputLimit
	}
	p.mu.Unlock()
	p.mu.Lock()
	p.released = true
	p.mu.Unlock()
	if box, ok := p.tree.(*cgroupBox); ok && box.resources {
		if u, err := box.usage(); err == nil {
			p.usage = &u
		} else {
			p.log.Debug("proc: cgroup usage", "pid", p.os.Pid, "err", err)
		}
	}
	if !p.keepOrphans || stopped {
		p.tree.release()
	}
	if p.limiter != nil {
		p.limiter.release()
	}

	res := p.buildResult()
	res.OutputIncomplete = incomplete
	p.mu.Lock()
	p.result = res
	for _, s := range []*outStream{p.out, p.errOut} {
		if s != nil && s.err != nil && p.err == nil {
			p.err = fmt.Errorf("proc: %s: %w", s.which, s.err)
		}
	}
	if p.input != nil && p.input.readErr != nil && p.err == nil {
		p.err = fmt.Errorf("proc: stdin: %w", p.input.readErr)
	}
	p.mu.Unlock()
	p.log.Debug("proc: finished", "pid", p.os.Pid, "status", res.Status, "exit", res.ExitCode, "signal", res.Signal, "duration", res.Duration)
	close(p.done)
}

// drainOutput waits for the pumps within the drain bound, then cuts them off.
func (p *Process) drainOutput() (incomplete bool) {
	if closed(p.out.done) && closed(p.errOut.done) {
		p.closeReaders()
		return false
	}
	timer := time.NewTimer(p.drain)
	defer timer.Stop()
	for _, s := range []*outStream{p.out, p.errOut} {
		if s == nil {
			continue
		}
		select {
		case <-s.done:
		case <-timer.C:
			for _, t := range []*outStream{p.out, p.errOut} {
				if t != nil && t.r != nil {
					t.r.SetReadDeadline(time.Now())
				}
			}
			<-s.done
		}
	}
	for _, s := range []*outStream{p.out, p.errOut} {
		if s.r != nil && !s.eof {
			incomplete = true
		}
	}
	p.closeReaders()
	return incomplete
}

func (p *Process) closeReaders() {
	for _, s := range []*outStream{p.out, p.errOut} {
		if s.r != nil {
			s.r.Close()
		}
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (p *Process) buildResult() *Result {
	res := &Result{
		Argv:        p.argv,
		Pid:         p.os.Pid,
		Started:     p.started,
		Duration:    p.ended.Sub(p.started),
		Containment: p.tree.containment(),
		ExitCode:    -1,
	}
	if p.state != nil {
		ws, _ := p.state.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			res.Signal = ws.Signal()
		} else {
			res.ExitCode = ws.ExitStatus()
		}
		if ru, ok := p.state.SysUsage().(*syscall.Rusage); ok {
			res.UserCPU = time.Duration(ru.Utime.Nano())
			res.SysCPU = time.Duration(ru.Stime.Nano())
			res.MaxRSS = ru.Maxrss * 1024
		}
	}
	if p.out != nil && p.out.capture != nil {
		res.Stdout, res.StdoutTruncated, _ = p.out.capture.final()
	}
	if p.errOut != nil && p.errOut.capture != nil {
		res.Stderr, res.StderrTruncated, _ = p.errOut.capture.final()
	}
	res.StdoutBytes, _ = snap(p.out)
	res.StderrBytes, _ = snap(p.errOut)
	if p.combined != nil {
		res.Combined, res.CombinedTruncated, _ = p.combined.final()
	}
	res.Usage = p.usage
	switch {
	case p.reason != "":
		res.Status = p.reason
	case res.Signal != 0:
		res.Status = StatusSignaled
	case res.ExitCode != 0:
		res.Status = StatusExitError
	default:
		res.Status = StatusOK
	}
	return res
}

var _ io.ReadWriteCloser = (*Process)(nil)

// SetOutputLimits changes the output limits of a started process, for a child started
// ahead of its work (a pre-started sandbox). Each must be at most the limit the stream
// was started with, which made it a pipe; 0 leaves a stream's limit as it is.
func (p *Process) SetOutputLimits(stdout, stderr int64) error {
	for _, x := range []struct {
		s *outStream
		n int64
	}{{p.out, stdout}, {p.errOut, stderr}} {
		if x.n == 0 {
			continue
		}
		if x.s == nil || x.s.r == nil || x.s.limit.Load() == 0 || x.n > x.s.limit.Load() {
			return fmt.Errorf("proc: SetOutputLimits(%d, %d): a stream was not started with a limit at least as large", stdout, stderr)
		}
		x.s.limit.Store(x.n)
	}
	return nil
}
