package native

import "time"

// ReadyStats says what became of a kind of ready runs.
type ReadyStats struct {
	Eligible int64         // runs that could have taken one (kinds kept on demand)
	Taken    int64         // runs that took one
	Made     int64         // ready runs made
	MadeCPU  time.Duration // the CPU time of making them
	Waiting  int           // ready runs waiting now
}

// JSReady returns the stats of b's JavaScript ready runs: tests see which way their
// runs went.
func JSReady(b *Backend) ReadyStats {
	p := b.js
	if p == nil {
		return ReadyStats{}
	}
	return ReadyStats{Eligible: p.eligible.Load(), Taken: p.taken.Load(), Made: p.made.Load(),
		MadeCPU: time.Duration(p.madeCPU.Load()), Waiting: len(p.runs)}
}

// SetReadyIdle sets how long JavaScript ready runs are kept without a run wanting
// one, for the backends made until restore is called.
func SetReadyIdle(d time.Duration) (restore func()) {
	old := readyIdle
	readyIdle = d
	return func() { readyIdle = old }
}

// WantJS notes a run that could have taken a JavaScript ready run, as one coming
// would: the pool is kept readyIdle longer, and made again if it was given up.
func WantJS(b *Backend) {
	if b.js != nil {
		b.demand(b.js)
	}
}

// ReadyMade returns how many ready runs of any kind b has made.
func ReadyMade(b *Backend) (n int64) {
	for _, p := range b.pools() {
		n += p.made.Load()
	}
	return n
}

// Zygote returns the pid of the warm template's zygote (0 without a template).
func Zygote(b *Backend) int {
	b.tmplMu.Lock()
	t := b.tmpl
	b.tmplMu.Unlock()
	if t == nil {
		return 0
	}
	if z := children(t.bx.proc.Pid()); len(z) > 0 {
		return z[0]
	}
	return 0
}

// RunPid1s returns the pids of the warm template's run pid 1s (its zygote's children),
// busy or waiting for a run.
func RunPid1s(b *Backend) []int {
	if z := Zygote(b); z > 0 {
		return children(z)
	}
	return nil
}
