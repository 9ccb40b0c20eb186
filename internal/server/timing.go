package server

import (
	"net/http"
	"strconv"
	"time"
)

// timing is where the time of a request that ran code went, answered in the W3C
// Server-Timing header (https://www.w3.org/TR/server-timing/) so that browsers,
// proxies and clients can tell the run from the HTTP around it:
//
//	Server-Timing: wait;dur=0.004, run;dur=12.345, total;dur=12.901
//
// in milliseconds: wait for a run slot, run in the backend's Run, total from the
// handler's entry to just before the answer is written (its encoding included).
type timing struct {
	start     time.Time     // the handler's entry
	wait, run time.Duration // for a slot; in Backend.Run
}

func startTiming() *timing { return &timing{start: time.Now()} }

// set writes the Server-Timing header; the caller writes the answer next.
func (t *timing) set(h http.Header) {
	total := time.Since(t.start)
	b := make([]byte, 0, 64)
	for i, m := range []struct {
		name string
		dur  time.Duration
	}{{"wait", t.wait}, {"run", t.run}, {"total", total}} {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, m.name...)
		b = append(b, ";dur="...)
		b = strconv.AppendFloat(b, float64(m.dur)/float64(time.Millisecond), 'f', 3, 64)
	}
	h.Set("Server-Timing", string(b))
}
