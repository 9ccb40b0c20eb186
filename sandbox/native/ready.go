package native

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

// Ready runs: the template forks a few runs ahead of time with the default limits,
// each as far as it can go before its code is known: its cgroup joined, its
// namespaces, tmpfs and /proc made, its program forked and confined (rlimits, uid,
// Landlock, seccomp), waiting for its config on a pipe. A run whose limits shape the
// box the same way (rlimits, tmpfs, network) takes one; its memory and process
// limits are set on its cgroup as it starts. The work of making the next one is done
// while the run runs, on the other CPU, rather than before it.
//
// There are two kinds. A Python ready run waits in the zygote's interpreter: a
// Python file then runs in it, anything else is exec'd once the config is there.
// A JavaScript ready run's program has exec'd node already, confined as any program
// is, and node waits in its bootstrap (boxinit's node-ready.js) for the config, then
// runs the run's file as its main module. Node cannot exec anything else, so only a
// run that is exactly node running a file with the language's environment takes one
// (jsEligible). They cost a node start each (~0.1 s of CPU), so they are kept only
// while JavaScript runs come: the first such run asks for them and goes the usual
// way, one that finds none waiting waits for one being made, and they are given up
// readyIdle after the last such run. They are made at once, not one at a time: two
// node starts take about as long as one on two CPUs.

// readyStart bounds the wait for a ready run to say it is ready.
const readyStart = 10 * time.Second

// A ready run that could not be made is tried again readyRetry later, twice as late
// after each failure in a row, up to readyRetryMax: a JavaScript one costs a node
// start, which a broken node would otherwise repeat ten times a second.
const (
	readyRetry    = 100 * time.Millisecond
	readyRetryMax = 30 * time.Second
)

// readyIdle is how long JavaScript ready runs are kept after the last run that could
// have taken one. A variable for tests.
var readyIdle = time.Minute

// readyWait bounds the wait of a run for a JavaScript ready run being made, when none
// waits: it is ready sooner than a node exec'd for the run would start (it started
// earlier), and no third node starts on the CPUs making two.
const readyWait = 2 * time.Second

// A readyPool holds the ready runs of one kind, made with cfg.
type readyPool struct {
	name string // "python" or "javascript", for the log
	// head is the zygote's message: 'w', the config goes to the forked interpreter;
	// 'e', to the program it execs first.
	head   byte
	cfg    *boxinit.Config
	limits proc.Resources // its cgroup's
	shape  string         // shape(cfg)
	runs   chan *forkRun
	wanted chan struct{}
	// eligible counts the runs that could take one of its kind (kept on demand
	// only), taken those that did, made those made and madeCPU their CPU time.
	eligible, taken, made, madeCPU atomic.Int64
	// parallel makes each wanted run at once rather than one at a time; making
	// counts those being made, awaited the runs waiting for one of them.
	parallel        bool
	making, awaited atomic.Int32
	failed          atomic.Int32 // failures in a row

	// A pool kept on demand (JavaScript) makes runs only while active: from a run
	// that could take one until readyIdle after the last such run.
	onDemand bool
	mu       sync.Mutex
	active   bool
	idle     *time.Timer
}

// shape is what of a run's config a ready run was made with: the limits applied
// inside the box before its code is known.
func shape(cfg *boxinit.Config) string {
	b, _ := json.Marshal(struct {
		Rlimits   []boxinit.Rlimit
		TmpSize   int64
		TmpInodes int
		Loopback  bool
		Landlock  bool
	}{cfg.Rlimits, cfg.TmpSize, cfg.TmpInodes, cfg.Loopback, cfg.Landlock})
	return string(b)
}

// readyCount is how many ready runs of a kind the backend keeps: Config.Ready (0:
// Config.Warm, one per CPU unless set).
func (b *Backend) readyCount() int {
	if b.cfg.Ready > 0 {
		return b.cfg.Ready
	}
	return b.cfg.Warm
}

// newPools makes the ready pools New works out once: Python's, made with the default
// limits, and JavaScript's, with the default limits and the language's environment.
// A pool that cannot be made is left nil: its runs go the usual way.
func (b *Backend) newPools() {
	n := b.readyCount()
	pool := func(name string, head byte, cfg *boxinit.Config, lim sandbox.Limits) *readyPool {
		return &readyPool{name: name, head: head, cfg: cfg, shape: shape(cfg),
			limits: proc.Resources{Memory: lim.Memory, Pids: int64(lim.Processes) + initPids},
			runs:   make(chan *forkRun, n), wanted: make(chan struct{}, n)}
	}
	if p, err := sandbox.Prepare(sandbox.Spec{Command: []string{"/bin/true"}}); err == nil {
		b.py = pool("python", 'w', b.initConfig(p), p.Limits)
	}
	if p, err := sandbox.Prepare(sandbox.Spec{Language: "javascript", Code: "\n"}); err == nil && len(p.Command) == 2 {
		// node -r BOOTSTRAP BOOTSTRAP: the bootstrap, preloaded, waits for the run;
		// as the main module's name it tells the main thread from a worker's.
		cfg := boxinit.NewConfig([]string{p.Command[0], "-r", boxinit.NodeReady, boxinit.NodeReady}, p.Env, p.Limits)
		cfg.Landlock = b.landlock
		b.js = pool("javascript", 'e', cfg, p.Limits)
		b.js.onDemand, b.js.parallel = true, true
		b.jsNode, b.jsEnv = p.Command[0], p.Env
	}
}

// pools returns the ready pools New made (a nil one is left out).
func (b *Backend) pools() []*readyPool {
	var ps []*readyPool
	for _, pool := range []*readyPool{b.py, b.js} {
		if pool != nil {
			ps = append(ps, pool)
		}
	}
	return ps
}

// jsEligible reports whether p may take a JavaScript ready run: its program is node
// running a file, as the javascript language runs one, with its environment and
// with nothing that is set when a process starts (stdin, a 2>&1, the limits the box
// applies) other than the ready run has. cfg is p's config.
func (b *Backend) jsEligible(p *sandbox.Prepared, cfg *boxinit.Config) bool {
	if b.js == nil || len(p.Command) < 2 || p.Command[0] != b.jsNode {
		return false
	}
	// Node reads its own options before the file, and "inspect" starts its debugger.
	if file := p.Command[1]; file == "" || strings.HasPrefix(file, "-") || file == "inspect" {
		return false
	}
	// A ready node started under the default memory limit: under a lower one, only a
	// start of its own says whether node fits.
	return !p.Combined && len(p.Stdin) == 0 && p.Limits.Memory >= b.js.limits.Memory &&
		slices.Equal(p.Env, b.jsEnv) && shape(cfg) == b.js.shape
}

// takeAnyReady returns a ready run made on t that p can take, and its pool; nil when
// none waits. A run that could take a JavaScript one keeps them wanted (the first
// goes without), and when none waits it waits for one being made, if any is not
// awaited yet, rather than take a Python one and exec node.
func (b *Backend) takeAnyReady(ctx context.Context, t *template, p *sandbox.Prepared, cfg *boxinit.Config) (*forkRun, *readyPool) {
	if b.jsEligible(p, cfg) {
		kept := b.demand(b.js)
		if fr := b.takeReady(t, b.js); fr != nil {
			return fr, b.js
		}
		if kept {
			if fr := b.awaitReady(ctx, t, b.js); fr != nil {
				return fr, b.js
			}
		}
	}
	if b.py != nil && shape(cfg) == b.py.shape {
		if fr := b.takeReady(t, b.py); fr != nil {
			return fr, b.py
		}
	}
	return nil, nil
}

// prepareReady makes one ready run of pool on t and waits until its program is
// confined and waits for its config.
func (b *Backend) prepareReady(t *template, pool *readyPool) (*forkRun, error) {
	cfg := *pool.cfg
	uid, free := t.takeUID()
	if !free {
		return nil, errors.New("no free uid")
	}
	cfg.UID = uid
	var payload bytes.Buffer
	if err := cfg.Write(&payload, nil); err != nil {
		t.putUID(uid)
		return nil, err
	}
	fr, err := b.launch(t, uid, pool.limits, pool.head, payload.Bytes(), nil, false, false)
	if err != nil {
		return nil, err
	}
	line := make(chan []byte, 1)
	go func() {
		l, _ := fr.st.ReadBytes('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if string(bytes.TrimSpace(l)) != `{"ready":true}` {
			fr.close()
			return nil, fmt.Errorf("a ready run failed: %q", bytes.TrimSpace(l))
		}
		// What the run's usage counts from, read now rather than when it is taken: a
		// ready run does nothing until then. On v1 the peak memory restarts here.
		if err := fr.g.Update(proc.Resources{}); err != nil {
			fr.close()
			return nil, fmt.Errorf("reset a ready run's peak memory: %w", err)
		}
		if fr.base, err = fr.g.Usage(); err != nil {
			fr.close()
			return nil, fmt.Errorf("a ready run's usage: %w", err)
		}
		return fr, nil
	case <-time.After(readyStart):
		fr.close() // the reader goroutine ends with the pipe
		return nil, errors.New("a ready run did not get ready")
	}
}

// takeReady returns a ready run of pool made on t, or nil.
func (b *Backend) takeReady(t *template, pool *readyPool) *forkRun {
	for {
		select {
		case fr := <-pool.runs:
			if fr := b.usable(t, pool, fr); fr != nil {
				return fr
			}
		default:
			return nil
		}
	}
}

// awaitReady waits for one of the ready runs of pool being made, at most readyWait,
// unless as many runs already wait for them.
func (b *Backend) awaitReady(ctx context.Context, t *template, pool *readyPool) *forkRun {
	defer pool.awaited.Add(-1)
	if pool.awaited.Add(1) > pool.making.Load() {
		return nil
	}
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	for {
		select {
		case fr := <-pool.runs:
			if fr := b.usable(t, pool, fr); fr != nil {
				return fr
			}
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// usable returns fr, a ready run of pool taken from it, when it was made on t and
// still waits; otherwise it closes it and returns nil.
func (b *Backend) usable(t *template, pool *readyPool, fr *forkRun) *forkRun {
	b.forgetReady(fr)
	if fr.t == t && fr.waiting() {
		pool.taken.Add(1)
		return fr
	}
	fr.close() // made by a template that is gone, or dead with it
	return nil
}

// waiting reports whether a ready run still waits for its config: its pid 1 has
// written nothing since it said it was ready, and has not ended (which closes the
// status pipe).
func (fr *forkRun) waiting() bool {
	if fr.st.Buffered() > 0 {
		return false
	}
	rc, err := fr.stR.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		quiet = err == nil && n == 0
	})
	return quiet
}

// wantReady asks pool's filler for one more ready run.
func (b *Backend) wantReady(pool *readyPool) {
	select {
	case pool.wanted <- struct{}{}:
	default:
	}
}

// fillReady keeps pool's ready runs made on the current template, until Close: one
// at a time, or each as it is wanted (pool.parallel).
func (b *Backend) fillReady(pool *readyPool) {
	defer b.filler.Done()
	for {
		select {
		case <-pool.wanted:
		case <-b.stopWarm:
			return
		}
		if !pool.parallel {
			b.makeReady(pool)
			continue
		}
		b.filler.Add(1)
		go func() {
			defer b.filler.Done()
			b.makeReady(pool)
		}()
	}
}

// makeReady makes one ready run of pool on the current template and puts it in the
// pool; after a failure it asks again later.
func (b *Backend) makeReady(pool *readyPool) {
	b.tmplMu.Lock()
	t := b.tmpl
	b.tmplMu.Unlock()
	if t == nil || !pool.wanting() {
		return // asked again when a template is ready, or runs come
	}
	pool.making.Add(1)
	defer pool.making.Add(-1)
	fr, err := b.prepareReady(t, pool)
	if err != nil {
		n := pool.failed.Add(1)
		retry := min(readyRetry<<min(n-1, 16), readyRetryMax)
		b.log.Debug("native: ready run", "kind", pool.name, "err", err, "retry_in", retry)
		select {
		case <-b.stopWarm:
		case <-time.After(retry):
			b.wantReady(pool)
		}
		return
	}
	pool.failed.Store(0)
	pool.made.Add(1)
	pool.madeCPU.Add(int64(fr.base.CPU))
	b.mu.Lock()
	b.readyNames[fr.g.Name()] = true
	b.mu.Unlock()
	if !pool.wanting() {
		b.forgetReady(fr)
		fr.close() // given up while it was made
		return
	}
	select {
	case pool.runs <- fr:
	default:
		b.forgetReady(fr)
		fr.close() // more than wanted
	}
}

// wanting reports whether pool's ready runs are kept now.
func (pool *readyPool) wanting() bool {
	if !pool.onDemand {
		return true
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return pool.active
}

// startReady asks pool's filler for a full pool.
func (b *Backend) startReady(pool *readyPool) {
	for range cap(pool.runs) {
		b.wantReady(pool)
	}
}

// readyTemplate starts filling the pools of a new template: Python's always,
// JavaScript's while its runs come.
func (b *Backend) readyTemplate() {
	for _, pool := range b.pools() {
		if pool.wanting() {
			b.startReady(pool)
		}
	}
}

// demand notes a run that could have taken one of pool's ready runs: the pool is kept
// until readyIdle after the last such run. It reports whether the pool was kept
// already.
func (b *Backend) demand(pool *readyPool) bool {
	pool.eligible.Add(1)
	if b.runs.Closed() {
		return false // Close stops the timer
	}
	pool.mu.Lock()
	start := !pool.active
	pool.active = true
	if pool.idle == nil {
		pool.idle = time.AfterFunc(readyIdle, func() { b.giveUp(pool) })
	} else {
		pool.idle.Reset(readyIdle)
	}
	pool.mu.Unlock()
	if start {
		b.startReady(pool)
	}
	return !start
}

// giveUp stops keeping pool's ready runs (no run wanted one for readyIdle) and
// closes those that wait.
func (b *Backend) giveUp(pool *readyPool) {
	pool.mu.Lock()
	pool.active = false
	pool.mu.Unlock()
	b.log.Debug("native: giving up ready runs", "kind", pool.name, "waiting", len(pool.runs))
	b.closePool(pool)
}

// closeReady gives up the ready runs waiting (Close, or their template died).
func (b *Backend) closeReady() {
	for _, pool := range b.pools() {
		b.closePool(pool)
	}
}

func (b *Backend) closePool(pool *readyPool) {
	for {
		select {
		case fr := <-pool.runs:
			b.forgetReady(fr)
			fr.close()
		default:
			return
		}
	}
}

// stopIdle stops the timers of the pools kept on demand (Close).
func (b *Backend) stopIdle() {
	for _, pool := range b.pools() {
		pool.mu.Lock()
		if pool.idle != nil {
			pool.idle.Stop()
		}
		pool.active = false
		pool.mu.Unlock()
	}
}

// forgetReady drops a ready run taken from the pool from what Leftovers holds.
func (b *Backend) forgetReady(fr *forkRun) {
	b.mu.Lock()
	delete(b.readyNames, fr.g.Name())
	b.mu.Unlock()
}
