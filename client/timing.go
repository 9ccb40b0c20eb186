package client

import (
	"strconv"
	"strings"
	"time"
)

// Timing is a runbox server's account of the time of one run request, from the
// Server-Timing header of its answer (docs/api.md). The time a call took beyond
// Total is the HTTP's: the request and the answer on their way, and their decoding
// on the client.
type Timing struct {
	Wait  time.Duration // waiting for a run slot
	Run   time.Duration // in the backend's Run: the run itself
	Total time.Duration // from the handler's entry to its answer, encoding included
}

// parseTiming reads the metrics runbox sends from Server-Timing header values
// ("wait;dur=0.004, run;dur=12.345, total;dur=12.9", in milliseconds), ignoring
// metrics it does not know (a proxy may add its own) and malformed ones.
func parseTiming(values []string) Timing {
	var t Timing
	for _, v := range values {
		for metric := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(metric, ";")
			var dst *time.Duration
			switch strings.TrimSpace(name) {
			case "wait":
				dst = &t.Wait
			case "run":
				dst = &t.Run
			case "total":
				dst = &t.Total
			default:
				continue
			}
			for p := range strings.SplitSeq(params, ";") {
				k, val, _ := strings.Cut(p, "=")
				if !strings.EqualFold(strings.TrimSpace(k), "dur") {
					continue
				}
				if ms, err := strconv.ParseFloat(strings.Trim(strings.TrimSpace(val), `"`), 64); err == nil && ms >= 0 {
					*dst = time.Duration(ms * float64(time.Millisecond))
				}
			}
		}
	}
	return t
}
