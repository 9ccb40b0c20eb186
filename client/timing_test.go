package client

import (
	"testing"
	"time"
)

func TestParseTiming(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, tc := range []struct {
		name   string
		values []string
		want   Timing
	}{
		{"none", nil, Timing{}},
		{"runbox's", []string{"wait;dur=0.004, run;dur=12.345, total;dur=12.901"},
			Timing{Wait: ms(0.004), Run: ms(12.345), Total: ms(12.901)}},
		{"a proxy's metrics around, in another header", []string{`cdn;desc="HIT";dur=0.1, run;dur=3`, `edge;dur=7,total;DUR="4.5"`},
			Timing{Run: ms(3), Total: ms(4.5)}},
		{"parameters in any order", []string{`run;desc="the run";dur=2`}, Timing{Run: ms(2)}},
		{"malformed", []string{"run;dur=x, total;dur=-1, wait, ;dur=3"}, Timing{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseTiming(tc.values); got != tc.want {
				t.Errorf("parseTiming(%q) = %+v, want %+v", tc.values, got, tc.want)
			}
		})
	}
}
