// Package server is runbox's HTTP face: the native v1 API (runs, languages, health,
// metrics), a Piston-compatible API and an MCP server, over one sandbox backend. It
// renders results and events; the run logic is the backend's and runner's.
//
// Admission comes before the request body is read: at most Config.Running runs at once
// and Config.Queue waiting; past that a request gets 429 with Retry-After at once.
// Bodies are capped, requested limits are checked against the server's maxima (400
// naming the field), and a 500 is only ever runbox's own failure.
package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/queue"
	"github.com/runboxhq/runbox/runner"
	"github.com/runboxhq/runbox/sandbox"
)

// Defaults of Config.
const (
	DefaultMaxBody    = 16 << 20
	DefaultRetryAfter = time.Second
)

// DefaultMaxLimits are the largest limits a request may ask for unless Config says
// otherwise.
var DefaultMaxLimits = sandbox.Limits{
	WallTime: time.Minute, CPUTime: time.Minute, Memory: 1 << 30, Processes: 256, OpenFiles: 1024,
	FileSize: 256 << 20, Stack: 64 << 20, Stdout: 8 << 20, Stderr: 8 << 20, TmpSize: 256 << 20,
	TmpInodes: 65536, Network: api.NetworkNone,
}

// Config configures a Server.
type Config struct {
	// Backend runs every request's code. Required.
	Backend sandbox.Backend
	// Running is how many runs go at once (default: the number of CPUs); Queue how
	// many more may wait for a slot (default: 4 × Running).
	Running, Queue int
	// MaxLimits bound what a request may ask (zero fields: DefaultMaxLimits'). A
	// request's unset limits take the sandbox defaults, lowered to these.
	MaxLimits sandbox.Limits
	// MaxBody caps a request body (default DefaultMaxBody).
	MaxBody int64
	// Token, when set, is required as "Authorization: Bearer TOKEN" on every endpoint
	// but /healthz and /readyz.
	Token string
	// Logger receives a record per request that ran code (default: none).
	Logger *slog.Logger
	// Submissions, when set, serves the asynchronous submissions API
	// (/v1/submissions); Callbacks then checks callback URLs (nil: the defaults,
	// private targets refused).
	Submissions *queue.Queue
	Callbacks   *queue.Callbacks
}

// Server serves the APIs. Create it with New; it is an http.Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	gate    *runner.Gate
	mux     *http.ServeMux
	handler http.Handler
	metrics *metrics

	// runs end when their request does, or when the server gives up on them at the
	// end of a graceful shutdown (stopRuns).
	runsCtx  context.Context
	stopRuns context.CancelFunc
	inflight sync.WaitGroup
	mu       sync.Mutex
	draining bool

	langsOnce sync.Once
	langs     []api.Language

	// watchCtx ends the submission watch streams when a shutdown begins.
	watchCtx    context.Context
	stopWatches context.CancelFunc
}

// New returns a server over cfg.Backend.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("server: no backend")
	}
	if cfg.Running <= 0 {
		cfg.Running = runtime.NumCPU()
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4 * cfg.Running
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	cfg.MaxLimits = fillMax(cfg.MaxLimits)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, gate: runner.NewGate(cfg.Running, cfg.Queue), mux: http.NewServeMux()}
	s.runsCtx, s.stopRuns = context.WithCancel(context.Background())
	s.watchCtx, s.stopWatches = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	s.routes()
	s.mux.Handle("/mcp", s.mcpHandler())
	s.handler = s.authenticate(s.mux)
	return s, nil
}

func fillMax(m sandbox.Limits) sandbox.Limits {
	d := DefaultMaxLimits
	set := func(v *int64, def int64) {
		if *v == 0 {
			*v = def
		}
	}
	if m.WallTime == 0 {
		m.WallTime = d.WallTime
	}
	if m.CPUTime == 0 {
		m.CPUTime = d.CPUTime
	}
	set(&m.Memory, d.Memory)
	set(&m.FileSize, d.FileSize)
	set(&m.Stack, d.Stack)
	set(&m.Stdout, d.Stdout)
	set(&m.Stderr, d.Stderr)
	set(&m.TmpSize, d.TmpSize)
	if m.Processes == 0 {
		m.Processes = d.Processes
	}
	if m.OpenFiles == 0 {
		m.OpenFiles = d.OpenFiles
	}
	if m.TmpInodes == 0 {
		m.TmpInodes = d.TmpInodes
	}
	if m.Network == "" {
		m.Network = d.Network
	}
	return m
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("POST /v1/runs", s.postRun)
	s.mux.HandleFunc("GET /v1/languages", s.getLanguages)
	s.pistonRoutes()
	s.submissionRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
}

// authenticate requires the bearer token, when there is one, everywhere but the
// health endpoints.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="runbox"`)
				writeError(w, http.StatusUnauthorized, "", "missing or wrong bearer token")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.isDraining() {
		writeError(w, http.StatusServiceUnavailable, "", "shutting down")
		return
	}
	running, queue := s.gate.Capacity()
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "running": s.gate.Running(), "waiting": s.gate.Waiting(),
		"slots": running, "queue": queue})
}

// errDraining refuses a run once a shutdown began.
var errDraining = errors.New("the server is shutting down")

// enter admits a run at once, or refuses it: errDraining while shutting down,
// runner.ErrOverloaded when every slot and queue place is taken. The caller calls done
// when the run is over. Every API admits its runs through it.
func (s *Server) enter() (ticket *runner.Ticket, done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, nil, errDraining
	}
	t, err := s.gate.Admit()
	if err != nil {
		s.metrics.rejected.Inc()
		return nil, nil, err
	}
	s.inflight.Add(1)
	return t, func() { t.Done(); s.inflight.Done() }, nil
}

// admit lets a request that will run code in, or answers 429 (busy) or 503
// (shutting down) and returns nil. The caller calls done when the run is over.
func (s *Server) admit(w http.ResponseWriter) (ticket *runner.Ticket, done func()) {
	t, done, err := s.enter()
	switch {
	case errors.Is(err, errDraining):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, "", "%v", err)
	case err != nil:
		w.Header().Set("Retry-After", strconv.Itoa(int(DefaultRetryAfter.Seconds())))
		writeError(w, http.StatusTooManyRequests, "", "%v; retry later", err)
	}
	return t, done
}

// runContext is the context of a run for request r: it ends with the request, or when
// a shutdown gives up waiting.
func (s *Server) runContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.runsCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// run runs spec once its ticket has a slot, and records it; tm, when set, gets the
// time waited for the slot and the time of the run.
func (s *Server) run(ctx context.Context, t *runner.Ticket, spec sandbox.Spec, apiName string, tm *timing) (*sandbox.Result, error) {
	begin := time.Now()
	if err := t.Wait(ctx); err != nil {
		return nil, err
	}
	waited := time.Since(begin)
	res, took, err := s.exec(ctx, spec, apiName, nil)
	if tm != nil {
		tm.wait, tm.run = waited, took
	}
	return res, err
}

// exec runs spec, passing its output to out as it comes when out is set (all at the
// end when the backend cannot stream), and counts and logs the run. took is the time
// of the backend's Run.
func (s *Server) exec(ctx context.Context, spec sandbox.Spec, apiName string, out func(stream string, p []byte)) (res *sandbox.Result, took time.Duration, err error) {
	start := time.Now()
	if st, ok := s.cfg.Backend.(sandbox.Streamer); ok && out != nil {
		res, err = st.RunStream(ctx, spec, out)
		took = time.Since(start)
	} else {
		res, err = s.cfg.Backend.Run(ctx, spec)
		took = time.Since(start)
		if res != nil && out != nil {
			out("stdout", []byte(res.Stdout))
			out("stderr", []byte(res.Stderr))
		}
	}
	s.record(apiName, res, err, took)
	return res, took, err
}

// record counts and logs a run.
func (s *Server) record(apiName string, res *sandbox.Result, err error, took time.Duration) {
	status := "error"
	if res != nil {
		status = string(res.Status)
	}
	s.metrics.runs.WithLabelValues(apiName, status).Inc()
	s.metrics.seconds.WithLabelValues(apiName).Observe(took.Seconds())
	if res != nil {
		s.log.Info("run", "api", apiName, "run", res.RunID, "language", res.Language, "status", res.Status, "took", took)
	} else {
		s.log.Info("run refused", "api", apiName, "err", err)
	}
}

// Shutdown stops admitting runs, waits for those in progress until ctx ends, then
// stops them (their results say timeout) and waits for them to return.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.stopWatches()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.stopRuns()
		<-done
		return fmt.Errorf("server: runs still going at the shutdown deadline were stopped: %w", ctx.Err())
	}
}

// Serve serves on ln until ctx ends, then shuts down gracefully: the listener closes,
// runs in progress get drain to finish, then are stopped; no run outlives Serve.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, s *Server, drain time.Duration) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	runsErr := s.Shutdown(sctx)
	// The runs are over; the responses are being written.
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	if err := hs.Shutdown(hctx); err != nil {
		hs.Close()
	}
	return runsErr
}

// metrics are the server's Prometheus metrics, on its own registry.
type metrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	rejected prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runbox_runs_total",
		Help: "Runs by API and status (error: refused before a result, as a bad spec)."}, []string{"api", "status"})
	m.seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "runbox_run_duration_seconds",
		Help: "Time of Backend.Run per run.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 15)}, []string{"api"})
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "runbox_rejected_total",
		Help: "Requests answered 429 because every slot and queue place was taken."})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runbox_runs_in_flight",
		Help: "Runs holding a slot."}, func() float64 { return float64(s.gate.Running()) })
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runbox_queue_depth",
		Help: "Admitted runs waiting for a slot."}, func() float64 { return float64(s.gate.Waiting()) })
	m.reg.MustRegister(m.runs, m.seconds, m.rejected, inflight, queued,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if w, ok := s.cfg.Backend.(interface{ WarmSize() int }); ok {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runbox_warm_pool_size",
			Help: "Warm sandboxes waiting for a run."}, func() float64 { return float64(w.WarmSize()) }))
	}
	return m
}

func writeJSON(w http.ResponseWriter, code int, v any) { writeTimedJSON(w, code, v, nil) }

// writeTimedJSON answers v as one line of JSON, in one write with its Content-Length,
// and with tm, when set, as the Server-Timing header (its total ends here, the
// encoding done).
func writeTimedJSON(w http.ResponseWriter, code int, v any, tm *timing) {
	b, err := encodeJSON(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = encodeJSON(api.Error{Error: "runbox could not encode its answer: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if tm != nil {
		tm.set(h)
	}
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// encodeJSON is v as json.Encoder writes it without HTML escaping: one line. A run's
// result is taken as its MarshalJSON (json.Marshal's, compact) makes it: the encoder
// would only check and copy those bytes again, twice the work of the output itself.
func encodeJSON(v any) ([]byte, error) {
	if res, ok := v.(*sandbox.Result); ok && res != nil {
		b, err := res.MarshalJSON()
		return append(b, '\n'), err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return buf.Bytes(), err
}

func writeError(w http.ResponseWriter, code int, field, format string, a ...any) {
	writeJSON(w, code, api.Error{Error: fmt.Sprintf(format, a...), Field: field})
}

// requestError is a fault in the request, answered 400 (or 413) with the field.
type requestError struct {
	code  int
	field string
	msg   string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(field, format string, a ...any) error {
	return &requestError{code: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, a...)}
}

// decodeBody reads r's JSON body into v, within the server's cap.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &tooBig):
			return &requestError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body over %d bytes", tooBig.Limit)}
		case errors.As(err, &typeErr):
			return badRequest(typeErr.Field, "field %s: want %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case errors.As(err, &syntaxErr):
			return badRequest("", "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
		default:
			return badRequest("", "malformed JSON: %v", err)
		}
	}
	if dec.More() {
		return badRequest("", "malformed JSON: more than one value in the body")
	}
	return nil
}

// answerError writes err: a request error with its code and field, a refused spec as
// 400, the end of the request's context as 499-like 503, anything else as 500.
func answerError(w http.ResponseWriter, err error) {
	code, field, msg := errorAnswer(err)
	writeError(w, code, field, "%s", msg)
}

// errorAnswer is how every API answers err: a request error with its code and field,
// a refused spec as 400 without the sandbox's prefix, the end of the request's
// context as 503, anything else (runbox's own failure) as 500.
func errorAnswer(err error) (code int, field, msg string) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return re.code, re.field, re.msg
	case errors.Is(err, sandbox.ErrInvalidSpec):
		return http.StatusBadRequest, "", strings.TrimPrefix(err.Error(), sandbox.ErrInvalidSpec.Error()+": ")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "", "the run was not started: " + err.Error()
	default:
		return http.StatusInternalServerError, "", err.Error()
	}
}
