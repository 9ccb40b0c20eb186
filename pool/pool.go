package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/runboxhq/runbox/proc"
)

// Defaults for the zero values of Config.
const (
	DefaultStartTimeout  = 10 * time.Second
	DefaultMaxRestarts   = 10
	DefaultRestartWindow = 10 * time.Second
	maxBackoff           = time.Second
	// smallFrame is written to a worker's stdin inline: one request in flight fits the
	// pipe buffer, so the write cannot block.
	smallFrame = 4096
)

// Errors of a task that did not get a result from its worker. A *WorkerError unwraps
// to one of the first three.
var (
	ErrTaskTimeout = errors.New("pool: task timed out; its worker was killed and replaced")
	ErrWorkerDied  = errors.New("pool: worker died during the task")
	ErrProtocol    = errors.New("pool: worker broke the protocol")
	ErrBroken      = errors.New("pool: broken: workers keep failing to start or dying")
	ErrClosed      = errors.New("pool: closed")
)

// WorkerError says what happened to the worker that ran a failed task.
type WorkerError struct {
	Kind   error        // ErrTaskTimeout, ErrWorkerDied or ErrProtocol
	Detail string       // the exit status, or the offending frame
	Result *proc.Result // the worker's run, when it ended
}

func (e *WorkerError) Error() string { return e.Kind.Error() + ": " + e.Detail }
func (e *WorkerError) Unwrap() error { return e.Kind }

// Config describes a pool. Cmd is required.
type Config struct {
	// Cmd starts one worker; its Stdin, Stdout and Stderr are set by the pool (stderr
	// lines go to Logger). Its other settings (Env, Rlimits, Containment, Resources…)
	// apply to each worker: Resources gives every worker a memory-limited cgroup of its
	// own, and a worker the kernel kills for memory fails its task with ErrWorkerDied.
	Cmd *proc.Cmd
	// Workers is the number of worker processes (0: runtime.NumCPU()).
	Workers int
	// QueueSize bounds the tasks waiting for a worker; Submit blocks (backpressure)
	// while it is full (0: 2 × Workers).
	QueueSize int
	// TaskTimeout bounds one task; its worker is killed and replaced (0: none).
	TaskTimeout time.Duration
	// StartTimeout bounds a worker's start and handshake (0: DefaultStartTimeout).
	StartTimeout time.Duration
	// Init, when set, is sent to every worker once, after its handshake and before its
	// first task (method "init"); a worker that fails it fails to start.
	Init any
	// MaxTasksPerWorker recycles a worker after this many tasks (0: never).
	MaxTasksPerWorker int
	// MaxRestarts within RestartWindow mark the pool broken (0: the defaults).
	MaxRestarts   int
	RestartWindow time.Duration
	// Logger receives workers' stderr lines and lifecycle records; nil discards.
	Logger *slog.Logger
}

// Pool is a set of worker processes. It is safe for concurrent use.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	tasks  chan *task
	wg     sync.WaitGroup
	ctx    context.Context // the workers' lifetime
	cancel context.CancelFunc

	mu       sync.RWMutex // held for reading while submitting, for writing to close
	closed   bool
	broken   chan struct{}
	breakOne sync.Once
	rmu      sync.Mutex
	restarts []time.Time
}

type task struct {
	ctx    context.Context
	params json.RawMessage
	fut    *Future
}

// Future is the outcome of one submitted task.
type Future struct {
	done   chan struct{}
	result json.RawMessage
	err    error
}

// Wait returns the task's JSON result, or ctx's error if ctx ends first.
func (f *Future) Wait(ctx context.Context) (json.RawMessage, error) {
	select {
	case <-f.done:
		return f.result, f.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (f *Future) finish(res json.RawMessage, err error) {
	f.result, f.err = res, err
	close(f.done)
}

// New starts the workers and waits for their handshakes, so a pool that cannot start
// fails here.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	if cfg.Cmd == nil || len(cfg.Cmd.Args) == 0 {
		return nil, errors.New("pool: Config.Cmd is required")
	}
	if cfg.Workers < 0 || cfg.QueueSize < 0 || cfg.TaskTimeout < 0 || cfg.MaxTasksPerWorker < 0 {
		return nil, errors.New("pool: negative Workers, QueueSize, TaskTimeout or MaxTasksPerWorker")
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 2 * cfg.Workers
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.MaxRestarts <= 0 {
		cfg.MaxRestarts = DefaultMaxRestarts
	}
	if cfg.RestartWindow <= 0 {
		cfg.RestartWindow = DefaultRestartWindow
	}
	p := &Pool{cfg: cfg, log: cfg.Logger, tasks: make(chan *task, cfg.QueueSize), broken: make(chan struct{})}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	first := make([]*worker, cfg.Workers)
	errs := make([]error, cfg.Workers)
	var wg sync.WaitGroup
	for i := range first {
		wg.Go(func() { first[i], errs[i] = p.startWorker(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, w := range first {
			if w != nil {
				w.kill()
			}
		}
		p.cancel()
		return nil, err
	}
	for _, w := range first {
		p.wg.Add(1)
		go p.run(w)
	}
	return p, nil
}

// Submit queues a task with params (encoded as JSON), waiting while the queue is full.
func (p *Pool) Submit(ctx context.Context, params any) *Future {
	fut := &Future{done: make(chan struct{})}
	raw, err := json.Marshal(params)
	if err != nil {
		fut.finish(nil, fmt.Errorf("pool: encode params: %w", err))
		return fut
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		fut.finish(nil, ErrClosed)
		return fut
	}
	select {
	case p.tasks <- &task{ctx: ctx, params: raw, fut: fut}:
	case <-ctx.Done():
		fut.finish(nil, context.Cause(ctx))
	case <-p.broken:
		fut.finish(nil, ErrBroken)
	}
	return fut
}

// Call runs one task and decodes its result.
func Call[Out any](ctx context.Context, p *Pool, in any) (Out, error) {
	var out Out
	raw, err := p.Submit(ctx, in).Wait(ctx)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("%w: result is not the expected JSON: %v", ErrProtocol, err)
	}
	return out, nil
}

// Map runs f's tasks for every input and returns the results in input order, like
// Pool.map. The error is the first failed task's, by input order.
func Map[In, Out any](ctx context.Context, p *Pool, inputs []In) ([]Out, error) {
	outs := make([]Out, len(inputs))
	var first error
	firstAt := len(inputs)
	for i, o := range Unordered[In, Out](ctx, p, inputs) {
		if o.Err != nil {
			if i < firstAt {
				first, firstAt = fmt.Errorf("pool: task %d: %w", i, o.Err), i
			}
			continue
		}
		outs[i] = o.Value
	}
	return outs, first
}

// Outcome is one task's result in Unordered.
type Outcome[Out any] struct {
	Value Out
	Err   error
}

// Unordered submits every input and yields (input index, outcome) as tasks finish, like
// imap_unordered. Stopping the iteration early leaves the remaining tasks to finish on
// their own.
func Unordered[In, Out any](ctx context.Context, p *Pool, inputs []In) iter.Seq2[int, Outcome[Out]] {
	return func(yield func(int, Outcome[Out]) bool) {
		type done struct {
			i int
			o Outcome[Out]
		}
		results := make(chan done, len(inputs))
		go func() {
			for i, in := range inputs {
				fut := p.Submit(ctx, in)
				go func() {
					raw, err := fut.Wait(context.Background())
					var o Outcome[Out]
					o.Err = err
					if err == nil {
						if jerr := json.Unmarshal(raw, &o.Value); jerr != nil {
							o.Err = fmt.Errorf("%w: result is not the expected JSON: %v", ErrProtocol, jerr)
						}
					}
					results <- done{i, o}
				}()
			}
		}()
		for range inputs {
			d := <-results
			if !yield(d.i, d.o) {
				return
			}
		}
	}
}

// Close stops accepting tasks, lets the workers finish the queued ones, then ends them
// (stdin closed; killed if ctx ends first).
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.tasks)
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel() // kills the workers through their process context
		<-done
		return context.Cause(ctx)
	}
}

// Broken is closed when the pool gave up restarting workers.
func (p *Pool) Broken() <-chan struct{} { return p.broken }

// run is one worker slot: it feeds tasks to its worker and replaces it as needed.
func (p *Pool) run(w *worker) {
	defer p.wg.Done()
	for {
		if w == nil {
			select {
			case <-p.broken:
				p.failQueued()
				return
			default:
			}
			if w, _ = p.replace(nil); w == nil {
				p.log.Error("pool: broken", "restarts", p.cfg.MaxRestarts, "window", p.cfg.RestartWindow)
				p.failQueued()
				return
			}
		}
		select {
		case t, ok := <-p.tasks:
			if !ok {
				w.retire()
				return
			}
			if err := context.Cause(t.ctx); err != nil {
				t.fut.finish(nil, err)
				continue
			}
			if w.gone() {
				// It died while idle and the slot has not seen it yet: the task has
				// not reached it, so it goes to a fresh worker.
				if w, _ = p.replace(w); w == nil {
					t.fut.finish(nil, ErrBroken)
					p.failQueued()
					return
				}
			}
			res, err, healthy := w.do(t, p.cfg.TaskTimeout)
			t.fut.finish(res, err)
			if !healthy {
				w.kill()
				w = nil
				continue
			}
			if p.cfg.MaxTasksPerWorker > 0 && w.tasks >= p.cfg.MaxTasksPerWorker {
				w.retire()
				w = nil
			}
		case <-w.proc.Done():
			p.log.Warn("pool: idle worker died", "pid", w.proc.Pid())
			w.end() // releases a frame still waiting for a reader
			w = nil
		}
	}
}

// replace ends a dead worker (if any) and starts another within the restart limit,
// retrying a failed start with backoff. It returns nil when the pool is broken.
func (p *Pool) replace(old *worker) (*worker, error) {
	if old != nil {
		old.end()
	}
	for failures := 1; ; failures++ {
		if !p.noteRestart() {
			p.breakOne.Do(func() { close(p.broken) })
			return nil, ErrBroken
		}
		w, err := p.startWorker(p.ctx)
		if err == nil {
			return w, nil
		}
		p.log.Warn("pool: worker did not start", "err", err)
		time.Sleep(min(maxBackoff, time.Duration(1<<min(failures, 10))*10*time.Millisecond))
	}
}

// failQueued fails what is queued once the pool is broken, until Close.
func (p *Pool) failQueued() {
	for t := range p.tasks {
		t.fut.finish(nil, ErrBroken)
	}
}

// noteRestart records a restart and reports whether the pool may go on.
func (p *Pool) noteRestart() bool {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	now := time.Now()
	kept := p.restarts[:0]
	for _, t := range p.restarts {
		if now.Sub(t) < p.cfg.RestartWindow {
			kept = append(kept, t)
		}
	}
	p.restarts = append(kept, now)
	return len(p.restarts) <= p.cfg.MaxRestarts
}

// worker is one running worker process.
type worker struct {
	proc   *proc.Process
	stdin  *os.File
	frames chan frame
	part   []byte        // pieces of a frame longer than the line splitter's limit
	quit   chan struct{} // closed when the worker is being ended: the reader only drains
	ending sync.Once
	nextID uint64
	tasks  int
	log    *slog.Logger
}

type frame struct {
	line []byte
	err  error
}

func (p *Pool) startWorker(ctx context.Context) (*worker, error) {
	// stdin is a real pipe written by the pool; stdout frames come straight from proc's
	// line splitter: no extra copy or goroutine on the way.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	w := &worker{stdin: inW, frames: make(chan frame, 1), quit: make(chan struct{}), log: p.log}
	c := *p.cfg.Cmd
	c.Stdin = inR
	c.Interactive = false
	c.Stdout = []proc.Sink{proc.Lines(w.onLine)}
	var pid atomic.Int64
	c.Stderr = []proc.Sink{proc.Lines(func(l proc.Line) { p.log.Info("worker", "pid", pid.Load(), "line", l.Text) })}
	pr, err := c.Start(p.ctx)
	inR.Close()
	if err != nil {
		inW.Close()
		return nil, err
	}
	pid.Store(int64(pr.Pid()))
	w.proc = pr
	go func() {
		<-pr.Done()
		w.deliver(frame{err: io.EOF})
	}()
	timer := time.NewTimer(p.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case f := <-w.frames:
		var h hello
		if f.err != nil || json.Unmarshal(f.line, &h) != nil || h.Worker == 0 {
			w.kill()
			return nil, fmt.Errorf("%w: first line %q (%v)", errHello, head(f.line), f.err)
		}
		if h.Worker != ProtocolVersion {
			w.kill()
			return nil, fmt.Errorf("pool: worker speaks protocol %d, want %d", h.Worker, ProtocolVersion)
		}
		if p.cfg.Init != nil {
			if err := w.init(p.cfg.Init, timer.C); err != nil {
				w.kill()
				return nil, err
			}
		}
		return w, nil
	case <-timer.C:
		w.kill()
		return nil, fmt.Errorf("%w within %v", errHello, p.cfg.StartTimeout)
	case <-ctx.Done():
		w.kill()
		return nil, context.Cause(ctx)
	}
}

// onLine runs on proc's stdout pump: it joins the pieces of long lines into frames.
func (w *worker) onLine(l proc.Line) {
	if l.Kind == proc.LinePartial || l.Kind == proc.LineUpdate {
		w.part = append(w.part, l.Text...)
		if l.Kind == proc.LineUpdate {
			w.part = append(w.part, '\r')
		}
		if len(w.part) > maxFrame {
			w.deliver(frame{line: w.part[:200], err: fmt.Errorf("frame over %d bytes", maxFrame)})
			w.part = w.part[:0]
		}
		return
	}
	line := []byte(l.Text)
	if len(w.part) > 0 {
		line = append(w.part, line...)
		w.part = nil
	}
	w.deliver(frame{line: line})
}

// deliver hands a frame to the task in progress. It never blocks for good: a blocked
// pump would block the end of the run, so once the worker is being ended frames are
// dropped.
func (w *worker) deliver(f frame) {
	select {
	case w.frames <- f:
	case <-w.quit:
	}
}

func head(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// init sends the initializer and waits for its answer (within the start timeout).
func (w *worker) init(params any, deadline <-chan time.Time) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("pool: encode Init: %w", err)
	}
	w.nextID++
	line, _ := json.Marshal(request{ID: w.nextID, Method: "init", Params: raw})
	go func() { _, _ = w.stdin.Write(append(line, '\n')) }()
	select {
	case f := <-w.frames:
		var resp response
		if f.err != nil || json.Unmarshal(f.line, &resp) != nil || resp.ID != w.nextID {
			return fmt.Errorf("%w: answered %q to init", ErrProtocol, head(f.line))
		}
		if resp.Error != nil {
			return fmt.Errorf("pool: worker initializer failed: %w", resp.Error)
		}
		return nil
	case <-deadline:
		return errors.New("pool: worker initializer did not answer within the start timeout")
	}
}

// do runs one task. healthy is false when the worker must be replaced.
func (w *worker) do(t *task, timeout time.Duration) (res json.RawMessage, err error, healthy bool) {
	w.nextID++
	w.tasks++
	id := w.nextID
	line, _ := json.Marshal(request{ID: id, Method: "call", Params: t.params})
	line = append(line, '\n')
	if len(line) <= smallFrame {
		_, _ = w.stdin.Write(line) // fits the pipe buffer: never blocks
	} else {
		go func() { _, _ = w.stdin.Write(line) }() // may block on a worker not reading: cut by the kill
	}
	var timeoutC <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		timeoutC = tm.C
	}
	select {
	case f := <-w.frames:
		if f.err != nil {
			return nil, w.died(), false
		}
		var resp response
		if jerr := json.Unmarshal(f.line, &resp); jerr != nil || resp.ID != id {
			return nil, &WorkerError{Kind: ErrProtocol, Detail: fmt.Sprintf("answered %q to request %d", head(f.line), id)}, false
		}
		if resp.Error != nil {
			return nil, resp.Error, true
		}
		return resp.Result, nil, true
	case <-timeoutC:
		return nil, &WorkerError{Kind: ErrTaskTimeout, Detail: fmt.Sprintf("after %v", timeout)}, false
	case <-t.ctx.Done():
		return nil, context.Cause(t.ctx), false
	}
}

// died waits for the dead worker's result and describes it.
func (w *worker) died() error {
	res, _ := w.proc.Wait(context.Background())
	detail := "exit status unknown"
	if res != nil {
		switch {
		case res.Usage != nil && res.Usage.OOMKills > 0:
			detail = fmt.Sprintf("killed by the kernel's OOM killer (%s; the worker's memory limit was reached)", proc.SignalName(res.Signal))
		case res.Signal != 0:
			detail = "killed by " + proc.SignalName(res.Signal)
		default:
			detail = fmt.Sprintf("exited with status %d", res.ExitCode)
		}
	}
	return &WorkerError{Kind: ErrWorkerDied, Detail: detail, Result: res}
}

func (w *worker) kill() {
	w.end()
	_ = w.proc.SignalTree(syscall.SIGKILL)
	<-w.proc.Done()
}

// gone reports whether the worker's process has ended.
func (w *worker) gone() bool {
	select {
	case <-w.proc.Done():
		return true
	default:
		return false
	}
}

func (w *worker) end() {
	w.ending.Do(func() {
		close(w.quit)
		w.stdin.Close()
	})
}

// retire closes the worker's stdin and waits for it to leave, killing it after a while.
func (w *worker) retire() {
	w.end()
	select {
	case <-w.proc.Done():
	case <-time.After(5 * time.Second):
		w.kill()
	}
}
