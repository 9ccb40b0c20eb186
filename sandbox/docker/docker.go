// Package docker is the sandbox backend that runs each spec in its own Docker
// container, through the Engine API (the official Go client; never the docker CLI).
//
// A run's container has no network, memory with no swap, a pids limit, a CPU quota,
// ulimits, a read-only root, size-capped tmpfs mounts for /work, /tmp and /dev/shm,
// all capabilities dropped but the three its init needs, no-new-privileges, and runbox
// labels (run id, owner, deadline). Its entrypoint is runbox's own init (package
// boxinit), copied once into a volume the containers mount read-only: the input files,
// stdin and the program's settings go to it over the attach stream, it starts the
// program as a user no other run shares, with runbox's seccomp filter, and sends the
// output and the verdict back as frames. runbox enforces the time limits (the init
// first, the engine's kill as the backstop), reads OOMKilled from inspect, and
// removes the container before Run returns.
//
// A janitor removes containers whose owner died or whose deadline passed, when the
// backend first reaches the engine and periodically, so a SIGKILLed runbox leaves
// nothing behind after the next start. A warm mode keeps started containers waiting
// for their run. See docs/sandbox.md for the trade-offs.
//
// It registers itself as "docker".
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/sandbox"
)

// Name is the name the backend registers under.
const Name = "docker"

// DefaultImage is the image of every language unless Config says otherwise: Debian
// with python3, node and bash, built offline by scripts/docker-images.sh.
const DefaultImage = "runbox-sandbox:bookworm"

// DefaultWarm is how many started containers the registered backend keeps waiting
// per image.
const DefaultWarm = 2

func init() {
	sandbox.Register(Name, func(ctx context.Context) (sandbox.Backend, error) {
		return New(ctx, Config{Warm: DefaultWarm})
	})
}

// Config configures the backend. The zero value is usable.
type Config struct {
	// Image is the image of runs whose language Images does not name, and of plain
	// commands (default DefaultImage).
	Image string
	// Images maps a language name ("python") to its image. The interpreter is looked
	// up in the image's PATH by name (python3, node, bash).
	Images map[string]string
	// Pull lets the backend pull an image the engine lacks; without it a missing image
	// is a sandbox_error that says how to get it.
	Pull bool
	// Warm is how many started containers to keep waiting per image (0: none). A warm
	// container serves one run and is replaced in the background.
	Warm int
	// CPUs is each container's CPU quota (default: the engine's CPU count, which keeps
	// a run from more than the machine and a multi-threaded run's CPU time above its
	// wall time). The CPU time limit is separate and always applies.
	CPUs float64
	// JanitorInterval is how often containers of dead owners and past deadlines are
	// removed (default a minute).
	JanitorInterval time.Duration
	// Logger receives debug lines per run and the janitor's work (default: none).
	Logger *slog.Logger
	// ClientOpts say how to reach the engine (default: the local socket, with the API
	// version negotiated). The command line passes client.FromEnv, which honours
	// DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY; the
	// library reads no environment itself.
	ClientOpts []client.Opt
}

// Backend runs specs in Docker containers. Safe for concurrent use.
type Backend struct {
	cfg      Config
	cli      *client.Client
	log      *slog.Logger
	owner    string // this process, on the owner label
	instance string // this backend value, on the instance label

	readyMu sync.Mutex
	ready   *engine // set once the engine answered and the init volume is in place

	imagesMu sync.Mutex
	images   map[string]bool // images known to be present

	warm *warmPools

	runs      sandbox.Runs
	stop      chan struct{}
	janitorWG sync.WaitGroup
}

// engine is what the backend learned from the engine when it first reached it.
type engine struct {
	ncpu       int
	initVolume string
}

var _ sandbox.Backend = (*Backend)(nil)

// New returns a Docker backend. It does not fail when the engine is unreachable:
// runs then fail with a sandbox_error that says what to do, and the backend connects
// when the engine comes up.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.JanitorInterval <= 0 {
		cfg.JanitorInterval = time.Minute
	}
	if cfg.Warm < 0 {
		cfg.Warm = 0
	}
	opts := append([]client.Opt{client.WithAPIVersionNegotiation()}, cfg.ClientOpts...)
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: engine client: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Backend{cfg: cfg, cli: cli, log: log, owner: ownerID(), instance: sandbox.NewRunID(),
		images: make(map[string]bool), stop: make(chan struct{})}
	b.warm = newWarmPools(b)
	// Reaching the engine now removes what a dead runbox left behind at once, and
	// lets the warm containers start filling; failing is not fatal here.
	if _, err := b.engine(ctx); err != nil {
		log.Debug("docker: engine not ready", "err", err)
	}
	b.janitorWG.Add(1)
	go b.janitorLoop()
	return b, nil
}

// Name returns "docker".
func (*Backend) Name() string { return Name }

// Close waits for the runs in progress, removes the warm containers and closes the
// connection to the engine.
func (b *Backend) Close() error {
	if !b.runs.Shut() {
		return nil
	}
	close(b.stop)
	b.runs.Wait()
	b.janitorWG.Wait()
	b.warm.close()
	return b.cli.Close()
}

// Run runs spec in a container. See sandbox.Backend.
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
	eng, err := b.engine(ctx)
	if err != nil {
		return sandbox.Fail(res, err)
	}
	image := b.imageOf(p.Language)
	if err := b.ensureImage(ctx, image); err != nil {
		return sandbox.Fail(res, err)
	}
	r, err := b.run(ctx, eng, p, res, image, out)
	if err != nil {
		return sandbox.Fail(res, err)
	}
	return r, nil
}

// Prewarm fills the warm pools of the images of languages (all of them when none is
// named) and waits until each holds Config.Warm started containers, so that the first
// runs do not wait for the engine. It does nothing when Config.Warm is 0.
func (b *Backend) Prewarm(ctx context.Context, languages ...string) error {
	if b.cfg.Warm <= 0 {
		return nil
	}
	eng, err := b.engine(ctx)
	if err != nil {
		return err
	}
	if len(languages) == 0 {
		languages = sandbox.Languages()
	}
	images := make(map[string]bool)
	for _, name := range languages {
		l, ok := lang.Lookup(name)
		if !ok {
			return fmt.Errorf("%w: unknown language %q (known: %s)", sandbox.ErrInvalidSpec, name, strings.Join(sandbox.Languages(), ", "))
		}
		images[b.imageOf(l)] = true
	}
	for image := range images {
		if err := b.ensureImage(ctx, image); err != nil {
			return err
		}
		if err := b.warm.fillAndWait(ctx, eng, image); err != nil {
			return err
		}
	}
	return nil
}

// imageOf returns the image runs of language l run in (l nil: a plain command).
func (b *Backend) imageOf(l *lang.Language) string {
	if l != nil {
		if img := b.cfg.Images[l.Name]; img != "" {
			return img
		}
	}
	return b.cfg.Image
}

// engine returns what the backend knows of the engine, reaching it first if it has
// not yet: a ping, the init volume, and a first pass of the janitor.
func (b *Backend) engine(ctx context.Context) (*engine, error) {
	b.readyMu.Lock()
	if b.ready != nil {
		defer b.readyMu.Unlock()
		return b.ready, nil
	}
	eng, err := b.reach(ctx)
	if err != nil {
		b.readyMu.Unlock()
		return nil, err
	}
	b.ready = eng
	b.readyMu.Unlock()
	// What a dead runbox left is removed before this one starts its own.
	b.sweep(ctx)
	return eng, nil
}

// reach pings the engine, learns its CPU count and puts the init in place.
func (b *Backend) reach(ctx context.Context) (*engine, error) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := b.cli.Ping(pctx, client.PingOptions{}); err != nil {
		return nil, unreachable(b.cli.DaemonHost(), err)
	}
	info, err := b.cli.Info(pctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker: engine info: %w", err)
	}
	vol, err := b.initVolume(ctx)
	if err != nil {
		return nil, err
	}
	return &engine{ncpu: max(info.Info.NCPU, 1), initVolume: vol}, nil
}

func unreachable(host string, err error) error {
	return fmt.Errorf("docker: the engine at %s is unreachable (%v): start it (dockerd, or systemctl start docker), or set DOCKER_HOST to one that runs", host, err)
}

// ownerID names this process for the janitor: the boot, the pid, and the pid's start
// time, so a recycled pid is not taken for the owner.
func ownerID() string {
	return fmt.Sprintf("%s/%d/%d", bootID(), os.Getpid(), startTime(os.Getpid()))
}

// bootID names this boot of the machine, read once.
var bootID = sync.OnceValue(func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
})

var errNoImage = errors.New("image not found")
