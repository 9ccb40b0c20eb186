package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
)

// ServeOptions are the settings of `runbox serve`.
type ServeOptions struct {
	IO *iostreams.IOStreams
	backendFlags
	queueFlags
	Addr      string
	Token     string
	Running   int
	Queue     int
	MaxBody   string
	MaxWall   time.Duration
	MaxMemory string
	Drain     time.Duration
}

// NewServeCmd returns `runbox serve`. runF replaces the run for tests; nil runs it.
func NewServeCmd(ios *iostreams.IOStreams, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve sandboxed runs over HTTP: runbox's API, a Piston-compatible API, MCP",
		Long: `Serve sandboxed runs over HTTP (docs/api.md):

  POST /v1/runs            a run: language + code (or files, or a command), stdin, limits;
                           ?stream=1 streams its events as NDJSON
  POST /v1/submissions     a run (or {"submissions": [...]}) queued: ids at once (202);
                           optional callback_url gets the result, signed
  GET  /v1/submissions/ID  queued, running, or done with the result; ?watch=1: NDJSON
  GET  /v1/submissions?ids=A,B   several; &watch=1 as well
  GET  /v1/languages       the languages and their versions
  GET  /api/v2/runtimes    Piston-compatible
  POST /api/v2/execute     Piston-compatible
  /mcp                     MCP over streamable HTTP (tools run_code, list_languages)
  GET  /healthz, /readyz   liveness, readiness
  GET  /metrics            Prometheus

At most --running runs go at once and --queue more wait; past that a request is
answered 429 with Retry-After at once. On a non-loopback address a bearer token is
required (--token, or RUNBOX_TOKEN). SIGINT or SIGTERM stops accepting runs, lets
those in progress finish for --drain, then stops them.

Submissions wait in a NATS JetStream queue (docs/scaling.md). By default it is
embedded: a NATS server in this process keeping its files in --data-dir, and
--workers runs of it at once here; nothing else to install. With --nats URL this
is an API node of a cluster: the queue is the cluster's, and runbox worker
processes on any hosts run it (this one too with --workers N). Past --max-queued
submissions waiting, new ones get 429. Submissions and results outlive restarts
for --results-ttl.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Token == "" {
				opts.Token = os.Getenv("RUNBOX_TOKEN")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	opts.backendFlags.add(f)
	opts.queueFlags.add(f)
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&opts.Token, "token", "", "bearer token clients must send (default $RUNBOX_TOKEN); required off loopback")
	f.IntVar(&opts.Running, "running", 0, "runs at once (default: the number of CPUs)")
	f.IntVar(&opts.Queue, "queue", 0, "runs waiting for a slot before 429 (default: 4 × --running)")
	f.StringVar(&opts.MaxBody, "max-body", "16MiB", "largest request body")
	f.DurationVar(&opts.MaxWall, "max-timeout", time.Minute, "largest wall time limit a request may ask")
	f.StringVar(&opts.MaxMemory, "max-memory", "1GiB", "largest memory limit a request may ask")
	f.DurationVar(&opts.Drain, "drain", 30*time.Second, "how long runs in progress may finish at shutdown")
	return cmd
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	maxBody, err := units.RAMInBytes(opts.MaxBody)
	if err != nil || maxBody <= 0 {
		return usagef("--max-body %q: want a size such as 16MiB", opts.MaxBody)
	}
	maxMem, err := units.RAMInBytes(opts.MaxMemory)
	if err != nil || maxMem < sandbox.MinMemory || maxMem > sandbox.MaxMemory {
		return usagef("--max-memory %q: want a size from 16MiB to 64GiB", opts.MaxMemory)
	}
	if opts.MaxWall <= 0 || opts.MaxWall > sandbox.MaxWallTime {
		return usagef("--max-timeout %v: want (0, %v]", opts.MaxWall, sandbox.MaxWallTime)
	}
	if opts.Running < 0 || opts.Queue < 0 {
		return usagef("--running and --queue must not be negative")
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return usagef("--addr %q: %v", opts.Addr, err)
	}
	if !loopback(host) && opts.Token == "" {
		return usagef("--addr %s is not a loopback address: give a bearer token with --token or RUNBOX_TOKEN", opts.Addr)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	backend, err := opts.open(ctx)
	if err != nil {
		return err
	}
	defer backend.Close()
	log := slog.New(slog.NewJSONHandler(opts.IO.ErrOut, nil))
	running := opts.Running
	if running == 0 {
		running = runtime.NumCPU()
	}
	sub, err := opts.openQueue(ctx, running, log)
	if err != nil {
		return err
	}
	defer sub.close()
	cfg := server.Config{Backend: backend, Running: opts.Running, Queue: opts.Queue, MaxBody: maxBody,
		MaxLimits: sandbox.Limits{WallTime: opts.MaxWall, CPUTime: opts.MaxWall, Memory: maxMem}, Token: opts.Token, Logger: log}
	if sub != nil {
		cfg.Submissions, cfg.Callbacks = sub.queue, sub.callbacks
	}
	s, err := server.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return &exitError{code: ExitInternal, msg: fmt.Sprintf("serve: %v", err)}
	}
	log.Info("listening", "addr", "http://"+ln.Addr().String(), "backend", backend.Name())
	// The in-process workers drain at the signal, as the HTTP runs do.
	wctx, stopWorkers := context.WithCancel(ctx)
	waitWorkers := sub.work(wctx, backend, opts.Drain, log, s.Ran)
	if err := server.Serve(ctx, ln, s, s, opts.Drain); err != nil {
		log.Warn("shutdown", "err", err)
	}
	stopWorkers()
	waitWorkers()
	log.Info("stopped")
	return nil
}

// loopback reports whether host names only this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
