package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/moby/moby/client"
	"github.com/spf13/pflag"

	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/docker"
	"github.com/runboxhq/runbox/sandbox/native"
)

// prewarm gets a native backend ready for its first runs, in the background: its
// template. A failure leaves runs cold, which the backend logs.
// (Docker's warm containers are started at the first run of each image.)
func prewarm(ctx context.Context, b sandbox.Backend) {
	if b, ok := b.(*native.Backend); ok {
		go func() { _ = b.Prewarm(ctx) }()
	}
}

// backendFlags choose the sandbox backend of `runbox run` and `runbox serve`.
type backendFlags struct {
	Backend string
	// Images ("python=IMAGE") and Pull configure the Docker backend.
	Images []string
	Pull   bool
	// Warm keeps sandboxes ready ahead of runs (native: runs forked from a started
	// template; docker: started containers).
	Warm bool
	// jobs is how many runs the command keeps going at once (runbox run -j), 0 when
	// it does not know (a server).
	jobs int
}

func (o *backendFlags) add(f *pflag.FlagSet) {
	f.StringVar(&o.Backend, "backend", "native", "the sandbox backend: native, docker, or host (no isolation, for trusted code)")
	f.StringArrayVar(&o.Images, "image", nil, "with --backend docker: the image of a language, LANG=IMAGE (repeatable; default "+docker.DefaultImage+")")
	f.BoolVar(&o.Pull, "pull", false, "with --backend docker: pull images the engine lacks")
	f.BoolVar(&o.Warm, "warm", true, "keep sandboxes ready ahead of runs (native: fork each run from a started template; docker: keep started containers); --warm=false builds each run's sandbox from nothing")
}

// dockerEnv reaches the engine the environment names (DOCKER_HOST and the rest), as the
// docker CLI does.
var dockerEnv = []client.Opt{client.FromEnv}

// dockerConfig turns --image and --pull into the Docker backend's settings; the error
// is a usage error's text.
func (o *backendFlags) dockerConfig() (docker.Config, error) {
	cfg := docker.Config{Warm: docker.DefaultWarm, Pull: o.Pull, ClientOpts: dockerEnv}
	if !o.Warm {
		cfg.Warm = 0
	}
	if o.Backend != docker.Name {
		if len(o.Images) > 0 || o.Pull {
			return cfg, fmt.Errorf("--image and --pull need --backend docker")
		}
		return cfg, nil
	}
	for _, kv := range o.Images {
		name, image, ok := strings.Cut(kv, "=")
		l, known := lang.Lookup(name)
		switch {
		case !ok || image == "":
			return cfg, fmt.Errorf("--image %q: want LANG=IMAGE, such as python=python:3.12-slim", kv)
		case !known:
			return cfg, fmt.Errorf("--image %q: unknown language %q (known: %s)", kv, name, strings.Join(sandbox.Languages(), ", "))
		}
		if cfg.Images == nil {
			cfg.Images = make(map[string]string)
		}
		cfg.Images[l.Name] = image
	}
	return cfg, nil
}

// open opens the backend the flags name for a long-lived command (serve, mcp, worker)
// and gets it ready for its first runs in the background (prewarm); a bad flag is a
// usage error.
func (o *backendFlags) open(ctx context.Context) (sandbox.Backend, error) {
	cfg, err := o.dockerConfig()
	if err != nil {
		return nil, usagef("%v", err)
	}
	b, err := o.openBackend(ctx, cfg)
	if errors.Is(err, sandbox.ErrUnknownBackend) {
		return nil, usagef("--backend %s: %v", o.Backend, err)
	}
	if err == nil {
		prewarm(ctx, b)
	}
	return b, err
}

// openBackend opens the backend --backend names, with cfg for docker.
func (o *backendFlags) openBackend(ctx context.Context, cfg docker.Config) (sandbox.Backend, error) {
	switch o.Backend {
	case docker.Name:
		return docker.New(ctx, cfg)
	case native.Name:
		ncfg := native.Config{Ready: readyRuns(o.jobs, runtime.NumCPU())}
		if !o.Warm {
			ncfg.Warm = -1
		}
		return native.New(ctx, ncfg)
	}
	return sandbox.Open(ctx, o.Backend)
}

// readyRuns is the native backend's Config.Ready for a command that keeps jobs runs
// going at once on cpus CPUs: the CPUs its own runs leave (none, -1, once they take
// them all: a run made ahead would take a CPU from one of the command's), or the
// backend's default when jobs is not known.
func readyRuns(jobs, cpus int) int {
	switch {
	case jobs <= 0:
		return 0
	case jobs >= cpus:
		return -1
	}
	return cpus - jobs
}
