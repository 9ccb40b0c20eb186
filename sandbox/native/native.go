package native

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

// Name is the name the backend registers under.
const Name = "native"

// DefaultHostUID is the first host uid of a box: the box's root (its init) is this uid
// on the host, and the program's uid 1000 is DefaultHostUID+1000. No host user owns
// these uids, so a process of a box owns nothing outside it.
const DefaultHostUID = 1_500_000_000

const (
	// initPids is how many processes and threads the init itself may have, over the
	// program's own limit: the box's cgroup pids limit is the sum, a backstop behind
	// the program's exact RLIMIT_NPROC.
	initPids = 32
	// statusLimit bounds the init's report.
	statusLimit = 64 << 10
)

func init() {
	sandbox.Register(Name, func(ctx context.Context) (sandbox.Backend, error) { return New(ctx, Config{}) })
}

// Config configures the native backend. The zero value is the default.
type Config struct {
	// HostUID is the first of the host uids the boxes map to (0: DefaultHostUID).
	HostUID uint32
	// Warm < 0 turns warm runs off: every run waits for a box of its own to be built
	// (cold). Otherwise runs are forked from a warm template's zygote (zygote.go),
	// made at the first run, and where that cannot be (no /usr/bin/python3 on the
	// host) Warm boxes are kept built and waiting for a run, so that a run does not
	// wait for namespaces, cgroups and mounts to be made (0: the number of CPUs). A
	// warm box has run nothing: each run still gets a box of its own, used once.
	Warm int
	// Ready is how many runs of each kind a warm template keeps made ahead of the runs
	// that take them (ready.go; 0: as many as Warm, < 0: none). A run made ahead is set
	// up on a CPU that would otherwise wait, off the run's clock; a caller that keeps
	// every CPU busy with runs of its own (runbox run -j N over a batch) has no such
	// CPU, and making them only adds work (a ready run costs more CPU than the fork
	// it saves: it rehearses its run, and its cgroup is read twice).
	Ready int
	// Logger receives debug records of each run; nil discards.
	Logger *slog.Logger
}

// Backend runs specs in Linux namespaces with a cgroup per run, seccomp, Landlock
// (when the kernel has it), rlimits and a fresh root file system. It needs root (or
// CAP_SYS_ADMIN with delegated cgroups). Safe for concurrent use.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	landlock bool
	// unusable says why no box can run here (checked once, at New); Diagnose says more.
	unusable error

	runs   sandbox.Runs
	mu     sync.Mutex
	warm   chan *box
	wanted chan struct{}  // one per warm box to build
	idle   map[int]string // warm boxes: init pid → cgroup name, for Leftovers
	// warming is held (read) by the filler from a box's start until it is in idle,
	// and taken by Leftovers, so that no warm box is ever seen half registered.
	warming  sync.RWMutex
	warmOnce sync.Once
	stopWarm chan struct{}
	filler   sync.WaitGroup

	// The warm template (zygote.go), started at the first run (or Prewarm); nil
	// until it is ready, after Close, or when none could be started (tmplFailed; tried
	// again after tmplRetry).
	tmplMu       sync.Mutex
	tmpl         *template
	tmplStarting chan struct{} // closed when the start in progress is over
	tmplFailed   bool
	tmplRetry    time.Time

	// Ready runs (ready.go), made on the template ahead of runs: Python's (nil: none)
	// and JavaScript's (nil: none; jsNode and jsEnv are the language's node and
	// environment).
	py, js     *readyPool
	jsNode     string
	jsEnv      []string
	readyNames map[string]bool // their cgroups, for Leftovers (under mu)
}

var _ sandbox.Backend = (*Backend)(nil)

// New checks that this host can run boxes and returns the backend. Cgroups that
// earlier runbox processes left behind (after a SIGKILL) are removed on the way.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("sandbox/native: needs Linux")
	}
	if cfg.HostUID == 0 {
		cfg.HostUID = DefaultHostUID
	}
	if cfg.Warm == 0 {
		cfg.Warm = runtime.NumCPU()
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, stopWarm: make(chan struct{}), idle: make(map[int]string)}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Warm > 0 {
		b.warm = make(chan *box, cfg.Warm)
		b.wanted = make(chan struct{}, cfg.Warm)
	}
	if os.Geteuid() != 0 {
		// Mapping the box's two users and making its cgroup need root; say so rather
		// than let each run fail with EPERM from deep inside.
		b.unusable = fmt.Errorf("the native backend needs root (to map the box's users and create its cgroup); "+
			"runbox doctor says what this host lacks, and --backend host runs trusted code without isolation (running as uid %d)", os.Geteuid())
	}
	_ = proc.RemoveStaleCgroups() // best effort: a box without a cgroup fails on its own, with the reason
	if abi, err := boxinit.LandlockABI(); err == nil && abi >= 1 {
		b.landlock = true
	}
	if cfg.Warm >= 0 {
		b.readyNames = make(map[string]bool)
	}
	if cfg.Warm >= 0 && cfg.Ready >= 0 {
		b.newPools()
		for _, pool := range b.pools() {
			b.filler.Add(1)
			go b.fillReady(pool)
		}
	}
	return b, nil
}

// Name returns "native".
func (b *Backend) Name() string { return Name }

// Close waits for runs in progress and kills the warm boxes; later runs fail with
// sandbox.ErrClosed.
func (b *Backend) Close() error {
	if !b.runs.Shut() {
		return nil
	}
	close(b.stopWarm)
	b.stopIdle()
	b.filler.Wait() // the fillers, and a template starting
	b.runs.Wait()
	b.tmplMu.Lock()
	b.dropTemplateLocked()
	b.tmplMu.Unlock()
	if b.warm != nil {
		close(b.warm)
		for bx := range b.warm {
			bx.discard()
		}
	}
	return nil
}

// Run runs spec in a new box. See sandbox.Backend.
func (b *Backend) Run(ctx context.Context, spec sandbox.Spec) (*sandbox.Result, error) {
	return b.RunStream(ctx, spec, nil)
}

var _ sandbox.Streamer = (*Backend)(nil)

// RunStream is Run, passing the output to out as it comes. See sandbox.Streamer.
func (b *Backend) RunStream(ctx context.Context, spec sandbox.Spec, out func(stream string, p []byte)) (*sandbox.Result, error) {
	p, err := sandbox.Prepare(spec)
	if err != nil {
		return nil, err
	}
	if err := b.runs.Start(); err != nil {
		return nil, err
	}
	defer b.runs.Done()

	res := p.NewResult(Name)
	if b.unusable != nil {
		return sandbox.Fail(res, b.unusable)
	}
	if t := b.warmTemplate(); t != nil {
		if r, err, ok := b.forked(ctx, t, p, res, out); ok {
			if err != nil {
				return sandbox.Fail(res, err)
			}
			return r, nil
		}
	}
	r, err := b.run(ctx, p, res, out)
	if err != nil {
		return sandbox.Fail(res, err)
	}
	return r, nil
}

// WarmSize is how many boxes wait built for a run (the server's
// runbox_warm_pool_size).
func (b *Backend) WarmSize() int { return len(b.warm) }
