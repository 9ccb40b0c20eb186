package server

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/lines"
	"github.com/runboxhq/runbox/runner"
	"github.com/runboxhq/runbox/sandbox"
)

// ndjson is the media type of a streamed run.
const ndjson = "application/x-ndjson"

// wantsStream reports whether a run request asks for its events as they happen:
// ?stream=1, or Accept: application/x-ndjson.
func wantsStream(r *http.Request) bool {
	if v := r.URL.Query().Get("stream"); v == "1" || v == "true" {
		return true
	}
	for _, a := range r.Header.Values("Accept") {
		if mt, _, err := mime.ParseMediaType(a); err == nil && mt == ndjson {
			return true
		}
	}
	return false
}

// streamRun answers a run as NDJSON events (docs/events.md): started, a line event per
// line of output as the program writes it (when the backend can stream), and the
// result last. The status code is 200 once the stream starts; the result event says
// how the run went.
func (s *Server) streamRun(ctx context.Context, w http.ResponseWriter, t *runner.Ticket, spec sandbox.Spec) {
	if err := t.Wait(ctx); err != nil {
		answerError(w, err)
		return
	}
	if spec.RunID == "" {
		spec.RunID = sandbox.NewRunID()
	}
	w.Header().Set("Content-Type", ndjson)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	ev := newEventWriter(w)
	ev.emit(api.Event{Type: api.EventStarted, RunID: spec.RunID})

	splitters := map[string]*lines.Splitter{}
	for _, stream := range []string{"stdout", "stderr"} {
		splitters[stream] = lines.New(0, func(l lines.Line) {
			e := api.Event{Type: api.EventLine, Stream: stream, Kind: l.Kind.String()}
			e.Text, e.Encoding = api.EncodeText(string(l.Text))
			ev.emit(e)
		})
	}
	var mu sync.Mutex // the streams may arrive from two goroutines
	out := func(stream string, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		splitters[stream].Write(p)
	}
	res, _, err := s.exec(ctx, spec, "v1-stream", out)
	mu.Lock()
	for _, sp := range splitters {
		sp.Flush()
	}
	mu.Unlock()
	if res == nil {
		res = &sandbox.Result{RunID: spec.RunID, Backend: s.cfg.Backend.Name(), Status: sandbox.StatusSandboxError}
		if err != nil {
			res.Error = err.Error()
		}
	}
	// The result is the last event: not flushed here, it leaves with the end of the
	// stream in one write, and the client finds the stream's end with it.
	ev.emit(api.Event{Type: api.EventResult, RunID: res.RunID, Run: res})
}

// eventWriter writes numbered events, each flushed as it is written but the result,
// which ends the stream.
type eventWriter struct {
	mu  sync.Mutex
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
	seq uint64
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &eventWriter{w: w, rc: http.NewResponseController(w), enc: enc}
}

func (e *eventWriter) emit(ev api.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	ev.Seq, ev.Time = e.seq, time.Now().UTC()
	if ev.Type == api.EventResult {
		_ = e.enc.Encode(ev)
		return
	}
	e.writeLocked(ev)
}

// write writes one JSON value as a line, flushed.
func (e *eventWriter) write(v any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeLocked(v)
}

func (e *eventWriter) writeLocked(v any) {
	_ = e.enc.Encode(v)
	_ = e.rc.Flush()
}
