package runner

import (
	"context"
	"encoding/base64"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/progress"
	"github.com/runboxhq/runbox/proc"
)

// DefaultProgressInterval is the least time between two progress events: a child that
// reports 100k times a second costs its readers ten events a second.
const DefaultProgressInterval = 100 * time.Millisecond

// LineLogger records every line of output (internal/logfile implements it).
type LineLogger interface {
	Line(t time.Time, stream, text string) error
}

// Watch runs one command and reports it as events. Its zero value is not usable: Cmd and
// Emit are required.
type Watch struct {
	// Cmd is the command. Watch adds a Capture (CaptureLimit) and a line sink to each
	// stream, after the sinks Cmd already has (a raw pass-through, say).
	Cmd          *proc.Cmd
	CaptureLimit int64
	// Progress recognises progress lines; nil follows no progress. Progress lines become
	// progress events instead of line events (they stay in the capture and the log).
	Progress *progress.Parser
	// ProgressInterval throttles progress events (0: DefaultProgressInterval); the last
	// reading is always emitted before the exited event.
	ProgressInterval time.Duration
	// Log, when set, receives every line.
	Log LineLogger
	// Emit receives the events, one at a time, in order. It must not block for long:
	// it runs on the goroutines that read the child's output.
	Emit func(api.Event)
	// Signals are forwarded to the process tree: SIGINT (a second one within the
	// command's Grace kills the tree), SIGTERM and SIGHUP.
	Signals <-chan os.Signal
}

// watchState serialises emission and keeps what the result needs.
type watchState struct {
	w        *Watch
	mu       sync.Mutex
	seq      uint64
	last     *api.Progress // last reading
	pending  bool          // last was not emitted yet (throttled)
	lastEmit time.Time
	interval time.Duration
	logErr   error
}

// Run runs the command to the end and returns its result in wire form (with the last
// progress reading and whether it was interrupted) and the proc result. The error is a
// start error, a sink error, or the first log write error.
func (w *Watch) Run(ctx context.Context) (*api.ProcessResult, *proc.Result, error) {
	st := &watchState{w: w, interval: w.ProgressInterval}
	if st.interval <= 0 {
		st.interval = DefaultProgressInterval
	}
	c := *w.Cmd
	c.Stdout = append(append([]proc.Sink{}, w.Cmd.Stdout...), proc.Capture(w.CaptureLimit), proc.Lines(st.line))
	c.Stderr = append(append([]proc.Sink{}, w.Cmd.Stderr...), proc.Capture(w.CaptureLimit), proc.Lines(st.line))
	p, err := c.Start(ctx)
	if err != nil {
		res := &proc.Result{Argv: c.Args, Status: proc.StatusStartError, ExitCode: -1}
		wire := res.Wire()
		wire.Error = err.Error()
		st.emit(api.Event{Type: api.EventExited, Result: &wire})
		return &wire, res, err
	}
	st.emit(api.Event{Type: api.EventStarted, Pid: p.Pid(), Argv: c.Args})

	interrupted := false
	var lastInt time.Time
	grace := c.Grace
	if grace == 0 {
		grace = proc.DefaultGrace
	}
	for done := false; !done; {
		select {
		case <-p.Done():
			done = true
		case sig := <-w.Signals:
			s, ok := sig.(syscall.Signal)
			if !ok {
				continue
			}
			if s == syscall.SIGINT {
				if interrupted && time.Since(lastInt) < grace {
					s = syscall.SIGKILL
				}
				interrupted, lastInt = true, time.Now()
			}
			_ = p.SignalTree(s)
			st.emit(api.Event{Type: api.EventSignal, Signal: proc.SignalName(s)})
		}
	}
	res, err := p.Wait(context.Background())
	st.flushProgress()
	wire := res.Wire()
	wire.Interrupted = interrupted
	st.mu.Lock()
	wire.Progress = st.last
	if err == nil {
		err = st.logErr
	}
	st.mu.Unlock()
	if err != nil {
		wire.Error = err.Error()
	}
	st.emit(api.Event{Type: api.EventExited, Result: &wire})
	return &wire, res, err
}

func (st *watchState) emit(ev api.Event) {
	st.mu.Lock()
	st.emitLocked(ev)
	st.mu.Unlock()
}

func (st *watchState) emitLocked(ev api.Event) {
	st.seq++
	ev.Seq = st.seq
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	st.w.Emit(ev)
}

func (st *watchState) line(l proc.Line) {
	if st.w.Log != nil {
		if err := st.w.Log.Line(l.Time, l.Stream.String(), l.Text); err != nil {
			st.mu.Lock()
			if st.logErr == nil {
				st.logErr = err
			}
			st.mu.Unlock()
		}
	}
	if st.w.Progress != nil && l.Kind != proc.LinePartial {
		if v, ok := st.w.Progress.Parse(l.Text); ok {
			st.progress(l, v)
			return
		}
	}
	ev := api.Event{Type: api.EventLine, Time: l.Time.UTC(), Stream: l.Stream.String(), Text: l.Text, Kind: l.Kind.String()}
	if !utf8.ValidString(l.Text) {
		ev.Text, ev.Encoding = base64.StdEncoding.EncodeToString([]byte(l.Text)), "base64"
	}
	st.emit(ev)
}

func (st *watchState) progress(l proc.Line, v progress.Value) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.last = &api.Progress{Percent: v.Percent, Done: v.Done, Total: v.Total, Unit: v.Unit, Line: l.Text}
	if l.Time.Sub(st.lastEmit) < st.interval {
		st.pending = true
		return
	}
	st.lastEmit, st.pending = l.Time, false
	st.emitLocked(api.Event{Type: api.EventProgress, Time: l.Time.UTC(), Stream: l.Stream.String(), Progress: st.last})
}

func (st *watchState) flushProgress() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pending {
		st.pending = false
		st.emitLocked(api.Event{Type: api.EventProgress, Progress: st.last})
	}
}
