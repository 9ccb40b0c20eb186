package native

import "time"

// JSReady returns how many runs could have taken a JavaScript ready run, how many
// took one, and how many ready runs wait: tests see which way their runs went.
func JSReady(b *Backend) (eligible, taken int64, waiting int) {
	if b.js == nil {
		return 0, 0, 0
	}
	return b.js.eligible.Load(), b.js.taken.Load(), len(b.js.runs)
}

// SetReadyIdle sets how long JavaScript ready runs are kept without a run wanting
// one, for the backends made until restore is called.
func SetReadyIdle(d time.Duration) (restore func()) {
	old := readyIdle
	readyIdle = d
	return func() { readyIdle = old }
}
