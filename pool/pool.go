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
	"slices"
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
	// retireGrace is how long a worker whose stdin was closed has to exit.
	retireGrace = 5 * time.Second
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
	// QueueSize bounds the tasks waiting for a worker: Submit blocks (backpressure)
	// while Workers + QueueSize tasks are submitted and unfinished (0: 2 × Workers).
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
//
// No goroutine of the pool stands between a task and its worker: Submit writes the
// request to an idle worker's stdin itself, and the task's waiter reads the answer
// from the worker's stdout itself (reader.go); when nobody waits, the worker's reader
// goroutine does, finishing the task's future and writing the next queued request.
// One goroutine per worker slot starts, watches and replaces workers, off that path.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	wg     sync.WaitGroup  // the slots
	ctx    context.Context // the workers' lifetime
	cancel context.CancelFunc
	room   chan struct{} // a token per task admitted and not finished: Workers + QueueSize
	nextID atomic.Uint64

	mu       sync.Mutex
	idle     []*worker // workers without a task; empty while tasks are queued
	queue    fifo      // tasks waiting for a worker; empty while a worker is idle
	closed   bool
	closing  chan struct{} // closed by Close
	isBroken bool
	broken   chan struct{}

	rmu      sync.Mutex
	restarts []time.Time
}

// task is one submitted task; its Future is what Submit returns.
type task struct {
	Future
	ctx    context.Context
	method string
	params json.RawMessage
	// From its start (under Pool.mu to set, read once it no longer runs):
	id      uint64      // taken in start order, so a worker sees its ids increase
	timer   *time.Timer // TaskTimeout
	stopCtx func() bool // the watch on ctx
}

// disarm stops the task's timeout and context watch once it no longer runs. Either may
// have fired already: abort then finds the task gone from its worker and does nothing.
func (t *task) disarm() {
	if t.timer != nil {
		t.timer.Stop()
	}
	if t.stopCtx != nil {
		t.stopCtx()
	}
}

// Future is the outcome of one submitted task.
type Future struct {
	done   chan struct{}
	result json.RawMessage
	err    error
	on     atomic.Pointer[worker] // the worker the task was sent to
}

// Wait returns the task's JSON result, or ctx's error if ctx ends first. While the
// task runs on a worker whose stdout nobody reads, Wait reads the answer itself.
func (f *Future) Wait(ctx context.Context) (json.RawMessage, error) {
	if f.finished() {
		return f.result, f.err
	}
	if w := f.on.Load(); w != nil {
		w.readFor(ctx, f)
	}
	select {
	case <-f.done:
		return f.result, f.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// finished reports whether the future has its outcome.
func (f *Future) finished() bool { return closed(f.done) }

// closed reports whether c is closed (each of the pool's "has it happened yet").
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
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
	p := &Pool{
		cfg: cfg, log: cfg.Logger,
		room:    make(chan struct{}, cfg.Workers+cfg.QueueSize),
		queue:   fifo{ring: make([]*task, cfg.Workers+cfg.QueueSize)},
		closing: make(chan struct{}), broken: make(chan struct{}),
	}
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
				w.abandon()
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
	return p.submit(ctx, params, false)
}

// submit is Submit; waiting says the caller waits for the future right away, and so
// reads the answer of a task it sends itself: the worker's reader is not woken for it.
func (p *Pool) submit(ctx context.Context, params any, waiting bool) *Future {
	t := &task{Future: Future{done: make(chan struct{})}, ctx: ctx, method: "call"}
	raw, err := json.Marshal(params)
	if err != nil {
		t.finish(nil, fmt.Errorf("pool: encode params: %w", err))
		return &t.Future
	}
	t.params = raw
	if err := p.admit(ctx); err != nil {
		t.finish(nil, err)
		return &t.Future
	}
	p.mu.Lock()
	switch {
	case p.isBroken:
		err = ErrBroken
	case p.closed:
		err = ErrClosed
	}
	if err != nil {
		p.mu.Unlock()
		p.finish(t, nil, err)
		return &t.Future
	}
	p.queue.push(t)
	w := p.takeIdleLocked()
	if w == nil {
		p.mu.Unlock()
		return &t.Future
	}
	next, retire := p.placeLocked(w) // t, unless its context has ended
	p.mu.Unlock()
	if waiting && next == t {
		w.send(t, false) // the caller reads the answer: see Future.Wait
	} else {
		w.resume(next, retire)
	}
	return &t.Future
}

// admit takes a token of room for a task, waiting while the pool is full.
func (p *Pool) admit(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	select {
	case p.room <- struct{}{}:
		return nil
	default:
	}
	select {
	case p.room <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-p.broken:
		return ErrBroken
	case <-p.closing:
		return ErrClosed
	}
}

// finish gives an admitted task its outcome and its room back.
func (p *Pool) finish(t *task, res json.RawMessage, err error) {
	<-p.room
	t.finish(res, err)
}

// takeIdleLocked removes an idle worker that is still alive from the idle list, or
// returns nil. A dead one is left to its slot.
func (p *Pool) takeIdleLocked() *worker {
	for len(p.idle) > 0 {
		w := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !w.gone() {
			return w
		}
	}
	return nil
}

// nextLocked starts the next queued task whose context is live on w, failing the
// others, and returns it; nil when none is queued.
func (p *Pool) nextLocked(w *worker) *task {
	for {
		t := p.queue.pop()
		if t == nil {
			return nil
		}
		if err := context.Cause(t.ctx); err != nil {
			p.finish(t, nil, err)
			continue
		}
		w.cur = t
		w.tasks++
		t.id = p.nextID.Add(1)
		t.on.Store(w)
		if d := p.cfg.TaskTimeout; d > 0 {
			t.timer = time.AfterFunc(d, func() {
				p.abort(w, t, &WorkerError{Kind: ErrTaskTimeout, Detail: fmt.Sprintf("after %v", d)})
			})
		}
		if t.ctx.Done() != nil {
			t.stopCtx = context.AfterFunc(t.ctx, func() { p.abort(w, t, context.Cause(t.ctx)) })
		}
		return t
	}
}

// placeLocked decides what w, a worker without a task, does next: start the next
// queued task (returned, for resume to send), wait on the idle list, or retire
// (recycled after MaxTasksPerWorker, or no longer needed).
func (p *Pool) placeLocked(w *worker) (next *task, retire bool) {
	if w.gone() {
		return nil, true // its slot replaces it; a queued task waits for that
	}
	if p.cfg.MaxTasksPerWorker > 0 && w.tasks >= p.cfg.MaxTasksPerWorker {
		w.recycled = true
		return nil, true
	}
	if next = p.nextLocked(w); next == nil {
		if p.closed || p.isBroken {
			return nil, true
		}
		p.idle = append(p.idle, w)
	}
	return next, false
}

// abort fails t, if it is still running on w, and kills w.
func (p *Pool) abort(w *worker, t *task, err error) {
	p.mu.Lock()
	if w.cur != t {
		p.mu.Unlock()
		return
	}
	w.cur = nil
	p.mu.Unlock()
	t.disarm()
	w.stop()
	p.finish(t, nil, err)
}

// answer takes a frame from a live worker, on its stdout pump: it finishes the task the
// frame answers and gives the worker its next one. A frame that is not the answer
// (tooLong: one over maxFrame, of which line is the head) kills the worker.
func (p *Pool) answer(w *worker, line string, tooLong bool) {
	var resp response
	ok := !tooLong
	if ok {
		resp, ok = parseResponse(line)
	}
	p.mu.Lock()
	t := w.cur
	w.cur = nil
	if t != nil && ok && resp.ID == t.id {
		next, retire := p.placeLocked(w)
		p.mu.Unlock()
		t.disarm()
		w.resume(next, retire)
		if resp.Error != nil {
			p.finish(t, nil, resp.Error)
		} else {
			p.finish(t, resp.Result, nil)
		}
		return
	}
	p.dropIdleLocked(w)
	p.mu.Unlock()
	if t == nil && w.ending() {
		return // a late frame from a worker being killed or retired
	}
	detail := fmt.Sprintf("frame over %d bytes: %q…", maxFrame, head([]byte(line)))
	if !tooLong {
		var id uint64
		if t != nil {
			id = t.id
		}
		detail = fmt.Sprintf("answered %q to request %d", head([]byte(line)), id)
	}
	w.stop()
	if t == nil {
		p.log.Warn("pool: worker spoke out of turn; killed", "pid", w.proc.Pid(), "detail", detail)
		return
	}
	t.disarm()
	p.finish(t, nil, &WorkerError{Kind: ErrProtocol, Detail: detail})
}

func (p *Pool) dropIdleLocked(w *worker) {
	if i := slices.Index(p.idle, w); i >= 0 {
		p.idle = slices.Delete(p.idle, i, i+1)
	}
}

// Call runs one task and decodes its result.
func Call[Out any](ctx context.Context, p *Pool, in any) (Out, error) {
	var out Out
	raw, err := p.submit(ctx, in, true).Wait(ctx)
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
	close(p.closing)
	idle := p.idle // the queue is empty: they are done
	p.idle = nil
	p.mu.Unlock()
	for _, w := range idle {
		w.end()
	}
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

// run is one worker slot: it puts its worker to work, and replaces it when it ends
// while the pool still needs it.
func (p *Pool) run(w *worker) {
	defer p.wg.Done()
	for w != nil {
		p.mu.Lock()
		next, retire := p.placeLocked(w)
		p.mu.Unlock()
		w.resume(next, retire)
		planned := p.watch(w)
		w = p.replace(planned)
	}
}

// watch waits for w's process to end and fails the task it was running. It reports
// whether the end was planned (recycled) rather than a failure. (A worker that Close
// ended is not replaced at all.)
func (p *Pool) watch(w *worker) (planned bool) {
	select {
	case <-w.proc.Done():
	case <-w.quit:
		grace := time.NewTimer(retireGrace)
		select {
		case <-w.proc.Done():
		case <-grace.C:
			w.kill()
		}
		grace.Stop()
	}
	w.drain()
	p.mu.Lock()
	t := w.cur
	w.cur = nil
	p.dropIdleLocked(w)
	planned = w.recycled
	p.mu.Unlock()
	if t != nil {
		t.disarm()
		p.finish(t, nil, w.died())
		return false
	}
	if !w.ending() {
		p.log.Warn("pool: idle worker died", "pid", w.proc.Pid())
	}
	return planned
}

// replace starts a worker for a slot whose worker ended, within the restart limit
// (unless the end was planned), retrying a failed start with backoff. It returns nil
// when the slot is no longer needed: the pool is closed and drained, or broken.
func (p *Pool) replace(planned bool) *worker {
	for failures := 0; ; failures++ {
		p.mu.Lock()
		done := p.isBroken || p.closed && p.queue.n == 0
		p.mu.Unlock()
		switch {
		case done:
			return nil
		case p.ctx.Err() != nil: // Close gave up waiting and killed the workers
			p.failQueued(ErrClosed)
			return nil
		case (!planned || failures > 0) && !p.noteRestart():
			p.breakDown()
			return nil
		}
		if failures > 0 {
			time.Sleep(min(maxBackoff, time.Duration(1<<min(failures, 10))*10*time.Millisecond))
		}
		w, err := p.startWorker(p.ctx)
		if err == nil {
			return w
		}
		p.log.Warn("pool: worker did not start", "err", err)
	}
}

// breakDown marks the pool broken: queued tasks fail, and idle workers end.
func (p *Pool) breakDown() {
	p.mu.Lock()
	if !p.isBroken {
		p.isBroken = true
		close(p.broken)
		p.log.Error("pool: broken", "restarts", p.cfg.MaxRestarts, "window", p.cfg.RestartWindow)
	}
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, w := range idle {
		w.end()
	}
	p.failQueued(ErrBroken)
}

// failQueued fails every queued task with err.
func (p *Pool) failQueued(err error) {
	p.mu.Lock()
	var queued []*task
	for t := p.queue.pop(); t != nil; t = p.queue.pop() {
		queued = append(queued, t)
	}
	p.mu.Unlock()
	for _, t := range queued {
		p.finish(t, nil, err)
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

// fifo is the queue of tasks waiting for a worker. Admission bounds it: it never holds
// more than len(ring).
type fifo struct {
	ring    []*task
	head, n int
}

func (q *fifo) push(t *task) {
	q.ring[(q.head+q.n)%len(q.ring)] = t
	q.n++
}

func (q *fifo) pop() *task {
	if q.n == 0 {
		return nil
	}
	t := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	return t
}

// worker is one running worker process.
type worker struct {
	pool    *Pool
	proc    *proc.Process
	stdin   *os.File
	quit    chan struct{} // closed when the worker is being ended
	endOnce sync.Once
	stdout  // its frames, and who reads them (reader.go)
	// Under Pool.mu:
	cur      *task // the task it runs
	tasks    int
	recycled bool
}

func (p *Pool) startWorker(ctx context.Context) (*worker, error) {
	// stdin and stdout are pipes of the pool's own, handed to the worker as they are:
	// the pool writes requests and reads answers on them with nothing in between.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	w := &worker{pool: p, stdin: inW, quit: make(chan struct{})}
	w.stdout.init(outR)
	c := *p.cfg.Cmd
	c.Stdin = inR
	c.Interactive = false
	c.Stdout = []proc.Sink{proc.File(outW)}
	var pid atomic.Int64
	c.Stderr = []proc.Sink{proc.Lines(func(l proc.Line) { p.log.Info("worker", "pid", pid.Load(), "line", l.Text) })}
	pr, err := c.Start(p.ctx)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	pid.Store(int64(pr.Pid()))
	w.proc = pr
	deadline := time.Now().Add(p.cfg.StartTimeout)
	line, err := w.startFrame(ctx, deadline)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errFrameTooLong) {
		w.abandon()
		if errors.Is(err, errStartTimeout) {
			return nil, fmt.Errorf("%w within %v", errHello, p.cfg.StartTimeout)
		}
		return nil, err
	}
	var h hello
	if err != nil || json.Unmarshal(line, &h) != nil || h.Worker == 0 {
		w.abandon()
		return nil, fmt.Errorf("%w: first line %q (%v)", errHello, head(line), err)
	}
	if h.Worker != ProtocolVersion {
		w.abandon()
		return nil, fmt.Errorf("pool: worker speaks protocol %d, want %d", h.Worker, ProtocolVersion)
	}
	if p.cfg.Init != nil {
		if err := w.init(ctx, p.cfg.Init, deadline); err != nil {
			w.abandon()
			return nil, err
		}
	}
	w.live()
	return w, nil
}

var errStartTimeout = errors.New("pool: start timed out")

func head(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// init sends the initializer and waits for its answer (within the start timeout).
func (w *worker) init(ctx context.Context, params any, deadline time.Time) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("pool: encode Init: %w", err)
	}
	id := w.pool.nextID.Add(1)
	w.write(&task{id: id, method: "init", params: raw})
	line, err := w.startFrame(ctx, deadline)
	if errors.Is(err, errStartTimeout) {
		return errors.New("pool: worker initializer did not answer within the start timeout")
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errFrameTooLong) {
		return err
	}
	var resp response
	if err != nil || json.Unmarshal(line, &resp) != nil || resp.ID != id {
		return fmt.Errorf("%w: answered %q to init", ErrProtocol, head(line))
	}
	if resp.Error != nil {
		return fmt.Errorf("pool: worker initializer failed: %w", resp.Error)
	}
	return nil
}

// send writes t's request to the worker's stdin and, unless the caller reads the
// answer itself (reads: Call, for the task it submitted), wakes the worker's reader.
func (w *worker) send(t *task, wake bool) {
	w.write(t)
	if wake {
		w.wake()
	}
}

// write writes t's request to the worker's stdin. A worker runs one task at a time,
// so a small frame fits the pipe buffer and the write cannot block; a large one may
// block on a worker that does not read, so it goes on a goroutine of its own, cut by
// the kill. A failed write needs no answer: the worker is dead or being ended, and its
// slot sees to the task.
func (w *worker) write(t *task) {
	line := appendRequest(make([]byte, 0, len(t.params)+64), t.id, t.method, t.params)
	if len(line) <= smallFrame {
		_, _ = w.stdin.Write(line)
		return
	}
	go func() { _, _ = w.stdin.Write(line) }()
}

// resume carries out placeLocked's decision, outside the lock.
func (w *worker) resume(next *task, retire bool) {
	switch {
	case next != nil:
		w.send(next, true)
	case retire:
		w.end()
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

// stop ends the worker and kills its tree without waiting: it may run on the worker's
// own stdout pump, which the end of the process waits for.
func (w *worker) stop() {
	w.end()
	_ = w.proc.SignalTree(syscall.SIGKILL)
}

func (w *worker) kill() {
	w.stop()
	<-w.proc.Done()
}

// gone reports whether the worker's process has ended.
func (w *worker) gone() bool { return closed(w.proc.Done()) }

// end closes the worker's stdin, which asks it to exit.
func (w *worker) end() {
	w.endOnce.Do(func() {
		close(w.quit)
		w.stdin.Close()
	})
}

// ending reports whether end was called.
func (w *worker) ending() bool { return closed(w.quit) }
