package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-units"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/internal/queue"
	"github.com/runboxhq/runbox/sandbox"
)

// queueSetupTimeout bounds finding or setting up the queue at start (a new cluster
// elects its JetStream leader in a few seconds).
const queueSetupTimeout = time.Minute

// callbackFlags configure the sending of results to callback URLs, by `runbox serve`
// (whose in-process workers send them, and which checks the URLs) and `runbox worker`.
type callbackFlags struct {
	CallbackSecret       string
	CallbackAllowPrivate bool
}

func (o *callbackFlags) add(f *pflag.FlagSet) {
	f.StringVar(&o.CallbackSecret, "callback-secret", "", "key of the HMAC-SHA256 signature of result callbacks (default $RUNBOX_CALLBACK_SECRET; none: unsigned)")
	f.BoolVar(&o.CallbackAllowPrivate, "callback-allow-private", false, "let callback URLs reach loopback, private and link-local addresses")
}

func (o *callbackFlags) callbacks() *queue.Callbacks {
	if o.CallbackSecret == "" {
		o.CallbackSecret = os.Getenv("RUNBOX_CALLBACK_SECRET")
	}
	return &queue.Callbacks{Secret: []byte(o.CallbackSecret), AllowPrivate: o.CallbackAllowPrivate}
}

// queueFlags are `runbox serve`'s settings of the submissions queue.
type queueFlags struct {
	callbackFlags
	Submissions    bool
	NATS           string
	DataDir        string
	Workers        int
	Replicas       int
	MaxQueued      int64
	MaxQueuedBytes string
	ResultTTL      time.Duration
	AckWait        time.Duration
	MaxAttempts    int
}

func (o *queueFlags) add(f *pflag.FlagSet) {
	o.callbackFlags.add(f)
	f.BoolVar(&o.Submissions, "submissions", true, "serve the asynchronous submissions API (false: no queue, no NATS)")
	f.StringVar(&o.NATS, "nats", "", "NATS URLs (comma-separated) of the JetStream cluster that holds the queue; none: an embedded server in --data-dir")
	f.StringVar(&o.DataDir, "data-dir", "", "with the embedded queue: where it keeps its files (default $XDG_STATE_HOME/runbox, or ~/.local/state/runbox, or ./runbox-data)")
	f.IntVar(&o.Workers, "workers", -1, "runs of queued submissions at once in this process (default: --running with the embedded queue, 0 with --nats)")
	f.IntVar(&o.Replicas, "replicas", 1, "replicas of the queue's stream and bucket (3 on a cluster of 3 NATS servers or more)")
	f.Int64Var(&o.MaxQueued, "max-queued", queue.DefaultMaxQueued, "submissions not yet finished before new ones get 429")
	f.StringVar(&o.MaxQueuedBytes, "max-queued-bytes", "1GiB", "their total size before new ones get 429")
	f.DurationVar(&o.ResultTTL, "results-ttl", queue.DefaultResultTTL, "how long a submission and its result are kept")
	f.DurationVar(&o.AckWait, "ack-wait", queue.DefaultAckWait, "how long a worker that stopped answering keeps a submission before another gets it")
	f.IntVar(&o.MaxAttempts, "max-attempts", queue.DefaultMaxAttempts, "workers a submission may be given before it fails as sandbox_error")
}

// defaultDataDir is the embedded queue's directory when --data-dir is not given.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "runbox")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "runbox")
	}
	return "runbox-data"
}

// submissions is the queue of a running `runbox serve`, and what to close with it.
type submissions struct {
	queue     *queue.Queue
	callbacks *queue.Callbacks
	workers   int
	nc        *nats.Conn
	embedded  *queue.Server
}

// openQueue connects to the NATS of --nats, or starts the embedded one, and sets the
// queue up; nil when --submissions=false.
func (o *queueFlags) openQueue(ctx context.Context, running int, log *slog.Logger) (*submissions, error) {
	if !o.Submissions {
		return nil, nil
	}
	maxBytes, err := units.RAMInBytes(o.MaxQueuedBytes)
	switch {
	case err != nil || maxBytes <= 0:
		return nil, usagef("--max-queued-bytes %q: want a size such as 1GiB", o.MaxQueuedBytes)
	case o.Replicas < 1 || o.Replicas > 5:
		return nil, usagef("--replicas %d: want 1 to 5", o.Replicas)
	case o.MaxQueued < 1, o.MaxAttempts < 1, o.ResultTTL <= 0, o.AckWait < time.Second:
		return nil, usagef("--max-queued, --max-attempts and --results-ttl must be positive, --ack-wait at least 1s")
	case o.NATS != "" && o.DataDir != "":
		return nil, usagef("--data-dir is for the embedded queue; with --nats the cluster keeps the files")
	}
	sub := &submissions{callbacks: o.callbacks(), workers: o.Workers}
	if o.NATS != "" {
		sub.nc, err = queue.Connect(o.NATS, "runbox-serve")
		if sub.workers < 0 {
			sub.workers = 0
		}
	} else {
		dir := o.DataDir
		if dir == "" {
			dir = defaultDataDir()
		}
		sub.embedded, err = queue.StartServer(queue.ServerConfig{Dir: dir, Listen: "127.0.0.1:0"})
		if err != nil {
			return nil, &exitError{code: ExitInternal, msg: fmt.Sprintf("serve: %v", err)}
		}
		log.Info("embedded queue", "dir", dir, "url_file", filepath.Join(dir, queue.URLFile))
		sub.nc, err = sub.embedded.Connect("runbox-serve")
		if sub.workers < 0 {
			sub.workers = running
		}
	}
	if err != nil {
		sub.close()
		return nil, &exitError{code: ExitInternal, msg: fmt.Sprintf("serve: %v", err)}
	}
	sctx, cancel := context.WithTimeout(ctx, queueSetupTimeout)
	defer cancel()
	sub.queue, err = queue.Open(sctx, sub.nc, queue.Config{Replicas: o.Replicas, MaxQueued: o.MaxQueued,
		MaxQueuedBytes: maxBytes, ResultTTL: o.ResultTTL, AckWait: o.AckWait, MaxAttempts: o.MaxAttempts})
	if err != nil {
		sub.close()
		return nil, &exitError{code: ExitInternal, msg: fmt.Sprintf("serve: %v", err)}
	}
	return sub, nil
}

// work runs the in-process workers until ctx ends, then drains them; it returns at
// once when there are none.
func (s *submissions) work(ctx context.Context, backend sandbox.Backend, drain time.Duration, log *slog.Logger,
	ran func(*sandbox.Result, time.Duration)) (wait func()) {
	if s == nil || s.workers == 0 {
		return func() {}
	}
	w := &queue.Worker{Queue: s.queue, Backend: backend, Concurrency: s.workers, Drain: drain,
		Callbacks: s.callbacks, Logger: log, Ran: ran}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			log.Warn("workers", "err", err)
		}
	}()
	return func() { <-done }
}

func (s *submissions) close() {
	if s == nil {
		return
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
}

// WorkerOptions are the settings of `runbox worker`.
type WorkerOptions struct {
	IO *iostreams.IOStreams
	backendFlags
	callbackFlags
	NATS        string
	Concurrency int
	Drain       time.Duration
	Name        string
}

// NewWorkerCmd returns `runbox worker`. runF replaces the run for tests; nil runs it.
func NewWorkerCmd(ios *iostreams.IOStreams, runF func(context.Context, *WorkerOptions) error) *cobra.Command {
	opts := &WorkerOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "worker --nats URL [flags]",
		Short: "Run queued submissions of `runbox serve --nats` from a NATS JetStream cluster",
		Long: `Run the submissions queued by API nodes (runbox serve --nats URL) on this host's
sandbox backend, --concurrency at once (docs/scaling.md).

Each submission is acked once its result is written; a worker that dies loses none
(another worker gets them after the API's --ack-wait). A submission that had started
on a worker that died is not run again unless it was submitted "idempotent": its
result says sandbox_error. SIGINT or SIGTERM stops fetching, lets the runs in progress
finish (up to --drain, then stops them), and exits 0.

With the embedded queue of a local runbox serve, --nats "$(cat DATA_DIR/nats.url)"
adds workers on the same host.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return workerRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	opts.backendFlags.add(f)
	opts.callbackFlags.add(f)
	f.StringVar(&opts.NATS, "nats", "", "NATS URLs (comma-separated) of the cluster that holds the queue (required)")
	f.IntVar(&opts.Concurrency, "concurrency", runtime.NumCPU(), "submissions run at once")
	f.DurationVar(&opts.Drain, "drain", 5*time.Minute, "at SIGINT/SIGTERM: how long runs in progress may finish before they are stopped")
	f.StringVar(&opts.Name, "name", "", "this worker's name in results (default host-pid)")
	return cmd
}

func workerRun(ctx context.Context, opts *WorkerOptions) error {
	switch {
	case opts.NATS == "":
		return usagef("--nats URL is required: the NATS cluster of the API nodes (runbox serve --nats)")
	case opts.Concurrency < 1:
		return usagef("--concurrency %d: want at least 1", opts.Concurrency)
	case opts.Drain < 0:
		return usagef("--drain must not be negative")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(opts.IO.ErrOut, nil))
	backend, err := opts.open(ctx)
	if err != nil {
		return err
	}
	defer backend.Close()
	nc, err := queue.Connect(opts.NATS, "runbox-worker")
	if err != nil {
		return &exitError{code: ExitInternal, msg: fmt.Sprintf("worker: %v", err)}
	}
	defer nc.Close()
	sctx, cancel := context.WithTimeout(ctx, queueSetupTimeout)
	q, err := queue.Bind(sctx, nc)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &exitError{code: ExitInternal, msg: fmt.Sprintf("worker: %v", err)}
	}
	w := &queue.Worker{Queue: q, Backend: backend, Concurrency: opts.Concurrency, Drain: opts.Drain,
		Name: opts.Name, Callbacks: opts.callbacks(), Logger: log}
	log.Info("working", "backend", backend.Name(), "concurrency", opts.Concurrency)
	if err := w.Run(ctx); err != nil {
		log.Warn("drain", "err", err)
	}
	log.Info("stopped")
	return nil
}

// NATSNodeOptions are the settings of the hidden `runbox nats-node`.
type NATSNodeOptions struct {
	Name, Dir, Listen, Token, Cluster, ClusterListen string
	Routes                                           []string
}

// newNATSNodeCmd returns the hidden `runbox nats-node`: a NATS server with JetStream,
// a node of a cluster, in this binary. The tests run their cluster with it; a
// deployment runs nats-server itself.
func newNATSNodeCmd(ios *iostreams.IOStreams) *cobra.Command {
	opts := &NATSNodeOptions{}
	cmd := &cobra.Command{
		Use:    "nats-node --dir DIR --listen ADDR [--cluster NAME --cluster-listen ADDR --routes URL...]",
		Short:  "Run a NATS JetStream server (a cluster node) until SIGINT or SIGTERM",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if opts.Dir == "" || opts.Listen == "" {
				return usagef("--dir and --listen are required")
			}
			s, err := queue.StartServer(queue.ServerConfig{Name: opts.Name, Dir: opts.Dir, Listen: opts.Listen, Token: opts.Token,
				Cluster: opts.Cluster, ClusterListen: opts.ClusterListen, Routes: opts.Routes})
			if err != nil {
				return &exitError{code: ExitInternal, msg: err.Error()}
			}
			fmt.Fprintln(ios.Out, "ready")
			<-ctx.Done()
			s.Shutdown()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "", "the server's name, unique in the cluster")
	f.StringVar(&opts.Dir, "dir", "", "JetStream's files")
	f.StringVar(&opts.Listen, "listen", "", "client address, host:port")
	f.StringVar(&opts.Token, "token", "", "client token")
	f.StringVar(&opts.Cluster, "cluster", "", "cluster name")
	f.StringVar(&opts.ClusterListen, "cluster-listen", "", "cluster (route) address, host:port")
	f.StringSliceVar(&opts.Routes, "routes", nil, "nats://host:port of the other nodes' cluster addresses")
	return cmd
}

// queueReport is the queue's part of `runbox doctor`: embedded (running or not) or
// remote, the depth of the stream, its workers, and its cluster's peers.
func queueReport(ctx context.Context, natsURL, dataDir string) BackendReport {
	r := BackendReport{Backend: "queue", Works: true}
	check := func(name string, ok bool, detail, fix string) {
		r.Checks = append(r.Checks, sandbox.Check{Name: name, OK: ok, Detail: detail, Fix: fix})
		r.Works = r.Works && ok
	}
	url := natsURL
	if url == "" {
		if dataDir == "" {
			dataDir = defaultDataDir()
		}
		b, err := os.ReadFile(filepath.Join(dataDir, queue.URLFile))
		if err != nil {
			check("mode", true, "embedded in runbox serve, which is not running here (data dir "+dataDir+")", "")
			return r
		}
		url = strings.TrimSpace(string(b))
		check("mode", true, "embedded in a running runbox serve (data dir "+dataDir+")", "")
	} else {
		check("mode", true, "remote NATS cluster", "")
	}
	nc, err := queue.Connect(url, "runbox-doctor")
	if err != nil {
		check("connect", false, err.Error(), "start the NATS servers, or check --nats")
		return r
	}
	defer nc.Close()
	check("connect", true, fmt.Sprintf("%s, NATS %s, largest message %s", nc.ConnectedServerName(),
		nc.ConnectedServerVersion(), units.BytesSize(float64(nc.MaxPayload()))), "")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	q, err := queue.Bind(bctx, nc)
	if err != nil {
		fix := "start runbox serve (an API node sets the queue up)"
		if errors.Is(err, context.DeadlineExceeded) {
			fix = "is JetStream enabled on the servers, and an API node up?"
		}
		check("stream", false, err.Error(), fix)
		return r
	}
	st, err := q.Stats(ctx)
	if err != nil {
		check("stream", false, err.Error(), "")
		return r
	}
	check("stream", true, fmt.Sprintf("%s: %d submissions not finished (%d waiting, %d running, at most %d), %s; %d records",
		queue.StreamName, st.Queued, st.Waiting, st.Running, st.MaxQueued, units.BytesSize(float64(st.Bytes)), st.Records), "")
	check("consumers", true, fmt.Sprintf("%s: %d idle worker requests, %d redelivered", queue.ConsumerName, st.Workers, st.Redelivered), "")
	if st.Cluster == "" {
		check("cluster", true, fmt.Sprintf("single server, %d replica", st.Replicas), "")
		return r
	}
	peers := []string{st.Leader + " (leader)"}
	healthy := true
	for _, p := range st.Peers {
		state := "current"
		switch {
		case p.Offline:
			state, healthy = "offline", false
		case !p.Current:
			state = "catching up"
		}
		peers = append(peers, p.Name+" ("+state+")")
	}
	check("cluster", healthy, fmt.Sprintf("%s, %d replicas: %s", st.Cluster, st.Replicas, strings.Join(peers, ", ")),
		"bring the offline NATS servers back")
	return r
}
