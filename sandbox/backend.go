package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"syscall"

	"github.com/docker/go-units"
	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/proc"
)

// Backend runs specs in isolation. Implementations are safe for concurrent use; each
// Run is its own box, and runs never see each other.
type Backend interface {
	// Name is the name the backend registered under ("native", "docker").
	Name() string
	// Run runs one spec and waits for it. It returns an error wrapping ErrInvalidSpec,
	// and no result, when the spec is invalid. Otherwise it returns a result: when the
	// run failed on runbox's side the result's status is sandbox_error and the error,
	// wrapping ErrSandbox, says why. When ctx ends, the run is killed and its result
	// has status timeout with limit "wall". Run never returns before every process of
	// the run is dead and everything it held on the host is released.
	Run(ctx context.Context, spec Spec) (*Result, error)
	// Close releases what the backend holds (warm boxes, connections). Runs in
	// progress finish first; Run after Close fails with ErrClosed.
	Close() error
}

// Doctor is implemented by backends that can explain whether they work on this host.
type Doctor interface {
	// Diagnose checks what the backend needs, one Check per requirement, and tries a
	// run when all are met.
	Diagnose(ctx context.Context) []Check
}

// Check is one requirement of a backend and whether this host meets it.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`        // what was found
	Fix    string `json:"fix,omitempty"` // what to do when not OK
	// Optional checks do not stop the backend from working (Landlock, for one).
	Optional bool `json:"optional,omitempty"`
}

var (
	// ErrSandbox is wrapped by errors of runbox's own making: the box could not be
	// set up, watched or torn down. The result's status is sandbox_error.
	ErrSandbox = errors.New("sandbox: runbox failed to run the program")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("sandbox: backend closed")
	// ErrUnknownBackend is returned by Open for a name nothing registered.
	ErrUnknownBackend = errors.New("sandbox: unknown backend")
)

// Factory opens a backend.
type Factory func(ctx context.Context) (Backend, error)

var registry struct {
	sync.Mutex
	m map[string]Factory
}

// Register makes a backend available to Open by name. Backends call it from init.
func Register(name string, f Factory) {
	registry.Lock()
	defer registry.Unlock()
	if registry.m == nil {
		registry.m = make(map[string]Factory)
	}
	if _, dup := registry.m[name]; dup {
		panic("sandbox: backend registered twice: " + name)
	}
	registry.m[name] = f
}

// Open opens the named backend.
func Open(ctx context.Context, name string) (Backend, error) {
	registry.Lock()
	f, ok := registry.m[name]
	registry.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %v)", ErrUnknownBackend, name, Backends())
	}
	return f(ctx)
}

// Backends lists the registered backend names, sorted.
func Backends() []string {
	registry.Lock()
	defer registry.Unlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Facts is what a backend observed about a finished run, before the verdict.
type Facts struct {
	Exited   bool // the program exited (ExitCode is valid) rather than being signaled
	ExitCode int
	Signal   syscall.Signal
	// Limit is the limit runbox enforced by stopping the run: LimitWall, LimitCPU,
	// LimitStdout or LimitStderr; empty when the program ended by itself.
	Limit string
	// OOMKilled is set when the kernel killed a process of the run for memory (read
	// from the cgroup's or the engine's OOM count, not guessed from SIGKILL).
	OOMKilled bool
}

// NewResult starts the result of a prepared run.
func (p *Prepared) NewResult(backend string) *Result {
	r := &Result{RunID: p.RunID, Backend: backend, Limits: p.Limits}
	if p.Language != nil {
		r.Language = p.Language.Name
	}
	return r
}

// Fail marks r as runbox's failure and returns the error to go with it.
func Fail(r *Result, err error) (*Result, error) {
	if !errors.Is(err, ErrSandbox) {
		err = fmt.Errorf("%w: %w", ErrSandbox, err)
	}
	r.Status, r.Error, r.ExitCode, r.Signal = StatusSandboxError, err.Error(), nil, ""
	return r, err
}

// Finish sets r's status, exit code or signal, limit and diagnostic from what the
// backend observed. The order decides between overlapping causes: a limit runbox
// enforced comes first, then the kernel's OOM kill, then how the program ended.
func (p *Prepared) Finish(r *Result, f Facts) {
	if f.Exited {
		code := f.ExitCode
		r.ExitCode, r.Signal = &code, ""
	} else {
		r.ExitCode, r.Signal = nil, proc.SignalName(f.Signal)
	}
	r.Limit = f.Limit
	switch {
	case f.Limit == api.LimitWall || f.Limit == api.LimitCPU:
		r.Status = StatusTimeout
	case !f.Exited && f.Signal == syscall.SIGXCPU:
		r.Status, r.Limit = StatusTimeout, api.LimitCPU // the per-process RLIMIT_CPU
	case f.Limit == api.LimitStdout || f.Limit == api.LimitStderr:
		r.Status = StatusOutputLimit
	case f.OOMKilled:
		r.Status, r.Limit = StatusOOM, api.LimitMemory
		r.Diagnostic = &Diagnostic{Type: "OOM", Message: "killed by the kernel for exceeding the memory limit",
			Hint: memoryHint(p.Limits.Memory)}
	case !f.Exited:
		r.Status = StatusSignaled
	case f.ExitCode == 0:
		r.Status = StatusOK
	default:
		r.Status = StatusRuntimeError
		p.classify(r, f)
	}
}

func (p *Prepared) classify(r *Result, f Facts) {
	if p.Language == nil || p.Language.Classify == nil {
		return
	}
	out := lang.Outcome{File: p.File, WorkDir: p.WorkDir, ExitCode: f.ExitCode, Signal: f.Signal,
		Stdout: []byte(r.Stdout), Stderr: []byte(r.Stderr)}
	if p.Combined {
		out.Stdout, out.Stderr = nil, out.Stdout // the report is at the end of the one stream
	}
	v := p.Language.Classify(out)
	if v.SyntaxError {
		r.Status = StatusSyntaxError
	}
	r.Diagnostic = v.Diagnostic
	if d := r.Diagnostic; d != nil && slices.Contains(memoryErrors, d.Type) && d.Hint == "" {
		d.Hint = memoryHint(p.Limits.Memory)
	}
}

// memoryErrors are the exception types of running out of memory.
var memoryErrors = []string{"MemoryError"}

func memoryHint(limit int64) string {
	return "the memory limit is " + units.BytesSize(float64(limit)) + "; raise it with the memory limit"
}

// Streamer is implemented by backends that hand over a run's output as the program
// writes it, for callers that show it live (the server's NDJSON stream).
type Streamer interface {
	// RunStream is Run, calling out with each piece of the program's output as it
	// arrives: stream is "stdout" or "stderr", p is valid only during the call, and
	// nothing past a stream's cap is passed. Calls for one stream come in order, from
	// one goroutine at a time, but the two streams may be called concurrently.
	RunStream(ctx context.Context, spec Spec, out func(stream string, p []byte)) (*Result, error)
}

// Runs tracks a backend's runs in progress for its Close: Start refuses new runs once
// Shut, and Wait waits for those started. The zero value is ready to use.
type Runs struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Start counts a run in, or returns ErrClosed once Shut. Done must follow a nil error.
func (r *Runs) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.wg.Add(1)
	return nil
}

// Done counts a run out.
func (r *Runs) Done() { r.wg.Done() }

// Shut refuses new runs from now on; it reports false when they were refused already.
func (r *Runs) Shut() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.closed = true
	return true
}

// Closed reports whether Shut was called.
func (r *Runs) Closed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Wait waits until every run started has called Done.
func (r *Runs) Wait() { r.wg.Wait() }
