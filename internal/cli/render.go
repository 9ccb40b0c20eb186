package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/runboxhq/runbox/api"
)

// renderer shows a run's events to someone. event is called from one goroutine at a
// time (runner.Watch serialises them); close flushes.
type renderer interface {
	event(api.Event)
	close()
}

// flushEvery bounds how long a buffered line waits before it is shown.
const flushEvery = 100 * time.Millisecond

// plainProgressEvery is the least time between two plain progress lines.
const plainProgressEvery = time.Second

// bufferedOut is a bufio.Writer flushed at least every flushEvery, so a fast child is
// shown in large writes and a slow one without delay.
type bufferedOut struct {
	mu    sync.Mutex
	w     *bufio.Writer
	timer *time.Timer
}

func newBufferedOut(w io.Writer) *bufferedOut {
	b := &bufferedOut{w: bufio.NewWriterSize(w, 64<<10)}
	b.timer = time.AfterFunc(time.Hour, b.flush)
	b.timer.Stop()
	return b
}

func (b *bufferedOut) write(f func(w *bufio.Writer)) {
	b.mu.Lock()
	wasEmpty := b.w.Buffered() == 0
	f(b.w)
	b.mu.Unlock()
	if wasEmpty {
		b.timer.Reset(flushEvery)
	}
}

func (b *bufferedOut) flush() {
	b.mu.Lock()
	b.w.Flush()
	b.mu.Unlock()
}

func (b *bufferedOut) close() {
	b.timer.Stop()
	b.flush()
}

// eventsRenderer writes NDJSON: one event per line.
type eventsRenderer struct {
	out *bufferedOut
	enc *json.Encoder
}

func newEventsRenderer(w io.Writer) *eventsRenderer {
	r := &eventsRenderer{out: newBufferedOut(w)}
	r.enc = json.NewEncoder(r.out.w)
	r.enc.SetEscapeHTML(false)
	return r
}

func (r *eventsRenderer) event(ev api.Event) {
	r.out.write(func(*bufio.Writer) { _ = r.enc.Encode(ev) })
	if ev.Type == api.EventExited {
		r.out.flush()
	}
}

func (r *eventsRenderer) close() { r.out.close() }

// plainRenderer prints timestamped, labelled lines and, at most once a second, a
// progress line: for logs and pipes.
type plainRenderer struct {
	out          *bufferedOut
	stamps       stampCache
	lastProgress time.Time
	pending      *api.Progress
}

func newPlainRenderer(w io.Writer) *plainRenderer { return &plainRenderer{out: newBufferedOut(w)} }

func (r *plainRenderer) event(ev api.Event) {
	switch ev.Type {
	case api.EventLine:
		r.out.write(func(w *bufio.Writer) { writeLogLine(w, &r.stamps, ev) })
	case api.EventProgress:
		r.pending = ev.Progress
		if ev.Time.Sub(r.lastProgress) >= plainProgressEvery {
			r.lastProgress = ev.Time
			r.printProgress(ev.Time)
		}
	case api.EventSignal:
		r.out.write(func(w *bufio.Writer) {
			fmt.Fprintf(w, "%s runbox forwarded %s\n", stamp(ev.Time), ev.Signal)
		})
	case api.EventExited:
		if r.pending != nil {
			r.printProgress(ev.Time)
		}
		r.out.flush()
	}
}

func (r *plainRenderer) printProgress(t time.Time) {
	p := r.pending
	r.pending = nil
	r.out.write(func(w *bufio.Writer) { fmt.Fprintf(w, "%s progress %s\n", stamp(t), describeProgress(p)) })
}

func (r *plainRenderer) close() { r.out.close() }

func stamp(t time.Time) string { return t.Local().Format("15:04:05.000") }

// stampCache formats a time once per millisecond: lines that arrive together share it.
type stampCache struct {
	ms  int64
	buf []byte
}

func (c *stampCache) get(t time.Time) []byte {
	if ms := t.UnixMilli(); ms != c.ms || c.buf == nil {
		c.ms = ms
		c.buf = t.Local().AppendFormat(c.buf[:0], "15:04:05.000")
	}
	return c.buf
}

// writeLogLine writes one line event as "time stream text". stamps belongs to the
// calling renderer, whose events come one at a time (runner.Watch serialises them).
func writeLogLine(w *bufio.Writer, stamps *stampCache, ev api.Event) {
	w.Write(stamps.get(ev.Time))
	if ev.Stream == "stderr" {
		w.WriteString(" stderr ")
	} else {
		w.WriteString(" stdout ")
	}
	if ev.Encoding == "base64" {
		w.WriteString("(base64) ")
	}
	w.WriteString(ev.Text)
	w.WriteByte('\n')
}

func describeProgress(p *api.Progress) string {
	var b strings.Builder
	if p.Percent >= 0 {
		fmt.Fprintf(&b, "%.0f%%", p.Percent)
	}
	if p.Done > 0 || p.Total > 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.0f", p.Done)
		if p.Total > 0 {
			fmt.Fprintf(&b, "/%.0f", p.Total)
		}
		if p.Unit != "" {
			b.WriteString(" " + p.Unit)
		}
	}
	return b.String()
}

// barRenderer draws a progress bar with rate and ETA on a terminal (mpb), log lines
// scrolling above it. Redraws are mpb's, at most every 150 ms.
type barRenderer struct {
	w       io.Writer
	p       *mpb.Progress
	bar     *mpb.Bar
	label   atomic.Value // string
	stamps  stampCache
	scale   float64 // bar units per reading unit
	started time.Time
}

const barRefresh = 150 * time.Millisecond

func newBarRenderer(w io.Writer) *barRenderer {
	r := &barRenderer{w: w, started: time.Now()}
	r.label.Store("running")
	return r
}

func (r *barRenderer) event(ev api.Event) {
	switch ev.Type {
	case api.EventLine:
		var b strings.Builder
		bw := bufio.NewWriter(&b)
		writeLogLine(bw, &r.stamps, ev)
		bw.Flush()
		if r.p != nil {
			r.p.Write([]byte(b.String()))
		} else {
			io.WriteString(r.w, b.String())
		}
	case api.EventProgress:
		r.progress(ev.Progress)
	case api.EventSignal:
		if ev.Signal == "SIGINT" {
			r.label.Store("interrupting")
		} else {
			r.label.Store("signaled " + ev.Signal)
		}
		if r.p == nil {
			fmt.Fprintf(r.w, "%s runbox forwarded %s\n", stamp(ev.Time), ev.Signal)
		}
	case api.EventExited:
		if r.bar != nil {
			if ev.Result != nil && ev.Result.Status == "ok" {
				r.bar.SetTotal(-1, true)
			} else {
				r.bar.Abort(false)
			}
		}
	}
}

func (r *barRenderer) progress(p *api.Progress) {
	if r.bar == nil {
		r.p = mpb.New(mpb.WithOutput(r.w), mpb.WithWidth(64), mpb.WithRefreshRate(barRefresh))
		total, name := int64(1000), func(decor.Statistics) string { return r.label.Load().(string) }
		var rate decor.Decorator = decor.Name("")
		if p.Total > 0 {
			r.scale = 1
			if p.Unit == "kB" {
				r.scale = 1024
			}
			total = int64(p.Total * r.scale)
			rate = decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WC{W: 12})
		} else {
			r.scale = 0 // percent-driven: 1000 steps
		}
		r.bar = r.p.AddBar(total,
			mpb.PrependDecorators(decor.Any(name, decor.WC{W: 13, C: decor.DindentRight}), decor.Percentage(decor.WC{W: 5})),
			mpb.AppendDecorators(rate, decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)),
		)
	}
	switch {
	case r.scale > 0 && p.Total > 0:
		r.bar.SetCurrent(int64(p.Done * r.scale))
	case p.Percent >= 0:
		r.bar.SetCurrent(int64(p.Percent * 10))
	}
}

func (r *barRenderer) close() {
	if r.p != nil {
		r.p.Wait()
	}
}

// quietRenderer shows nothing.
type quietRenderer struct{}

func (quietRenderer) event(api.Event) {}
func (quietRenderer) close()          {}
