package native

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

// A template is a warm box whose init runs a zygote (sandbox/boxinit/zygote.py): a
// Python interpreter, started once, that forks one child per run. The child joins the
// run's own cgroup, enters new mount, pid and ipc namespaces (and network, where
// Landlock cannot keep runs' abstract sockets apart, or for a loopback), mounts a
// fresh tmpfs, becomes one of the template's program uids (one per run in
// progress), drops every capability, and takes no_new_privs, Landlock, the rlimits
// and the seccomp filter before it runs the code. Python code runs in the forked
// interpreter, with its start-up done; anything else is exec'd. What a run shares
// with the others of its template: the read-only root, the user and UTS namespaces,
// and (with Landlock ABI 6) the empty network namespace.
type template struct {
	bx   *box
	sock *os.File // our end of the zygote's SOCK_SEQPACKET socket
	mu   sync.Mutex
	free []int // program uids no run uses, the last freed on top
}

// takeUID returns a program uid for a run (false: as many runs as uids are in
// progress). A uid is free again once its run's namespace is empty, so the common
// sequential case keeps one.
func (t *template) takeUID() (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.free)
	if n == 0 {
		return 0, false
	}
	uid := t.free[n-1]
	t.free = t.free[:n-1]
	return uid, true
}

func (t *template) putUID(uid int) {
	t.mu.Lock()
	t.free = append(t.free, uid)
	t.mu.Unlock()
}

// zygoteStart bounds the wait for a new template's zygote to say it is ready.
const zygoteStart = 10 * time.Second

// templateRetry is how long a template that failed to start is not tried again.
const templateRetry = 30 * time.Second

// pythonZygote returns the argv prefix and environment of the Python language's
// runs: the zygote starts as they would, so that a run's code can run in it.
func pythonZygote() ([]string, []string, error) {
	p, err := sandbox.Prepare(sandbox.Spec{Language: "python", Code: "pass"})
	if err != nil {
		return nil, nil, err
	}
	return p.Command[:len(p.Command)-1], p.Env, nil
}

func (b *Backend) startTemplate() (*template, error) {
	argv, env, err := pythonZygote()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(argv[0]); err != nil {
		return nil, fmt.Errorf("no zygote without %s: %w", argv[0], err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "zygote"), os.NewFile(uintptr(fds[1]), "zygote")
	bx, err := b.spawnWith(theirs, boxinit.Slots)
	theirs.Close()
	if err != nil {
		ours.Close()
		return nil, err
	}
	cfg := &boxinit.Config{Zygote: argv, Env: env, Landlock: b.landlock}
	err = cfg.Write(bx.cfgW, nil)
	bx.cfgW.Close()
	if err == nil {
		buf := make([]byte, 16)
		_ = ours.SetReadDeadline(time.Now().Add(zygoteStart))
		var n int
		n, err = ours.Read(buf)
		_ = ours.SetReadDeadline(time.Time{})
		if err == nil && string(buf[:n]) != "ready" {
			err = fmt.Errorf("zygote said %q", buf[:n])
		}
	}
	if err != nil {
		ours.Close()
		bx.discard()
		st, _ := readStatus(bx.stR)
		if st.Error != "" {
			err = fmt.Errorf("%w (%s: %s)", err, st.Stage, st.Error)
		}
		pres, _ := bx.proc.Wait(context.Background())
		if pres != nil && len(pres.Stderr) > 0 {
			err = fmt.Errorf("%w; its stderr: %q", err, tail(pres.Stderr))
		}
		return nil, fmt.Errorf("start the zygote: %w", err)
	}
	t := &template{bx: bx, sock: ours}
	for i := boxinit.Slots - 1; i >= 0; i-- {
		t.free = append(t.free, boxinit.UID+i)
	}
	return t, nil
}

// close stops the zygote (it ends when its socket closes) and kills the template.
func (t *template) close() {
	t.sock.Close()
	t.bx.discard()
}

// sendTimeout bounds the hand-over of a run to the zygote.
const sendTimeout = 5 * time.Second

// maxMessage is the largest message the zygote reads (zygote.py's MAX_MESSAGE, less
// room for the header).
const maxMessage = 64<<10 - 64

// send hands the zygote a run: msg, and the files as SCM_RIGHTS.
func (t *template) send(msg []byte, files []*os.File) error {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	// A zygote that stops reading is wedged: the run goes cold, and the template is
	// replaced, rather than the caller waiting.
	if err := t.sock.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return err
	}
	rc, err := t.sock.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), msg, unix.UnixRights(fds...), nil, 0)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}

// warmTemplate returns the backend's template when one is ready. Otherwise it starts
// one in the background (when none is starting, and the last failure is old enough)
// and returns nil: the run goes cold rather than wait, since a template takes about
// as long to start as a cold run.
func (b *Backend) warmTemplate() *template {
	if b.cfg.Warm < 0 {
		return nil
	}
	b.tmplMu.Lock()
	defer b.tmplMu.Unlock()
	if t := b.tmpl; t != nil {
		select {
		case <-t.bx.proc.Done():
			b.log.Warn("native: the warm template died; starting another", "pid", t.bx.proc.Pid())
			b.dropTemplateLocked()
		default:
			return t
		}
	}
	b.startTemplateLocked()
	return nil
}

// startTemplateLocked starts a template in the background unless one is starting or
// the last attempt failed less than templateRetry ago.
func (b *Backend) startTemplateLocked() {
	if b.tmplStarting != nil || time.Now().Before(b.tmplRetry) || b.runs.Closed() {
		return
	}
	done := make(chan struct{})
	b.tmplStarting = done
	b.filler.Add(1)
	go func() {
		defer b.filler.Done()
		defer close(done)
		t, err := b.startTemplate()
		b.tmplMu.Lock()
		defer b.tmplMu.Unlock()
		b.tmplStarting = nil
		switch {
		case err != nil:
			b.log.Warn("native: no warm template; runs use cold boxes", "err", err, "retry_in", templateRetry)
			b.tmplRetry = time.Now().Add(templateRetry)
			b.tmplFailed = true
		case b.runs.Closed():
			t.close()
		default:
			b.tmpl, b.tmplFailed = t, false
			b.readyTemplate()
			b.mu.Lock()
			b.idle[t.bx.proc.Pid()] = t.bx.proc.CgroupName()
			for _, pid := range children(t.bx.proc.Pid()) {
				b.idle[pid] = t.bx.proc.CgroupName() // the zygote
			}
			b.mu.Unlock()
		}
	}()
}

// Prewarm starts the warm template, if there is none, and waits until it is ready (or
// could not be started: runs then go cold; the error says why).
func (b *Backend) Prewarm(ctx context.Context) error {
	if b.cfg.Warm < 0 || b.unusable != nil {
		return b.unusable
	}
	b.tmplMu.Lock()
	if b.tmpl == nil {
		b.tmplRetry = time.Time{} // asked for: try now
		b.startTemplateLocked()
	}
	starting := b.tmplStarting
	b.tmplMu.Unlock()
	if starting != nil {
		select {
		case <-starting:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.tmplMu.Lock()
	defer b.tmplMu.Unlock()
	switch {
	case b.tmpl != nil:
		return nil
	case b.tmplFailed:
		return errors.New("sandbox/native: no warm template could be started (see the log); runs use cold boxes")
	}
	return sandbox.ErrClosed
}

// coldPool reports whether cold runs should keep boxes built ahead: only where no
// template can serve the runs.
func (b *Backend) coldPool() bool {
	b.tmplMu.Lock()
	defer b.tmplMu.Unlock()
	return b.tmplFailed
}

// dropTemplateLocked forgets the template (it died, or the backend closes) and kills it.
func (b *Backend) dropTemplateLocked() {
	t := b.tmpl
	if t == nil {
		return
	}
	b.tmpl = nil
	b.closeReady()
	b.mu.Lock()
	for pid, cg := range b.idle {
		if cg == t.bx.proc.CgroupName() {
			delete(b.idle, pid)
		}
	}
	b.mu.Unlock()
	t.close()
}

// children lists the child processes of pid.
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// A forkRun is a run handed to the zygote: its cgroup, the host's ends of its pipes.
type forkRun struct {
	t          *template
	uid        int
	g          *proc.Group
	limits     proc.Resources // the cgroup's
	base       proc.Usage     // a ready run's usage when it got ready
	outR, errR *os.File       // errR is outR for 2>&1
	stR        *os.File
	st         *bufio.Reader // the status lines
	cfgW       *os.File      // where the config goes, when not in the message
	writeErr   chan error    // the config writer's outcome
}

// close gives back what a run holds: the host's pipe ends, its cgroup, its uid.
func (fr *forkRun) close() {
	for _, f := range []*os.File{fr.outR, fr.errR, fr.stR, fr.cfgW} {
		if f != nil {
			f.Close()
		}
	}
	fr.g.Close()
	fr.t.putUID(fr.uid)
}

// errNotTaken is launch's error when the zygote took nothing (it is gone or wedged).
var errNotTaken = errors.New("the warm template took no run")

// launch hands the zygote a run as uid. The message has the run's shape (head, then
// boxinit.Config.Write's bytes of a config that holds nothing of the run's own: its
// Shape, or a ready pool's defaults): the zygote and the run's pid 1 serve other runs
// after this one, and what a process held stays in its memory. The run's own config
// (config: Write's bytes, or nil for a ready run, whose run comes later) goes down a
// pipe to the program. head is 'p' for a run, or a ready run's 'w' or 'e'. On an
// error everything is given back, uid included; errNotTaken says the zygote took
// nothing.
func (b *Backend) launch(t *template, uid int, limits proc.Resources, head byte, shape, config []byte, loopback, combined bool) (*forkRun, error) {
	fr := &forkRun{t: t, uid: uid, limits: limits, writeErr: make(chan error, 1)}
	if len(shape) > maxMessage {
		t.putUID(uid)
		return nil, fmt.Errorf("a run's shape of %d bytes: the zygote reads %d", len(shape), maxMessage)
	}
	g, err := proc.NewGroup(limits)
	if err != nil {
		t.putUID(uid)
		return nil, fmt.Errorf("the run's cgroup: %w", err)
	}
	fr.g = g
	joins, err := g.JoinFiles()
	pipe := func() (r, w *os.File) {
		if err != nil {
			return nil, nil
		}
		r, w, err = os.Pipe()
		return r, w
	}
	net := byte('n')
	if loopback {
		net = 'l'
	}
	var cfgR, outW, errW, stW *os.File
	cfgR, fr.cfgW = pipe()
	fr.outR, outW = pipe()
	fr.errR, errW = fr.outR, outW
	if !combined {
		fr.errR, errW = pipe()
	}
	fr.stR, stW = pipe()
	if err == nil {
		msg := append([]byte{head, net}, shape...)
		if serr := t.send(msg, append([]*os.File{cfgR, outW, errW, stW}, joins...)); serr != nil {
			err = fmt.Errorf("%w: %w", errNotTaken, serr)
		}
	}
	for _, f := range append(joins, cfgR, outW, errW, stW) { // the zygote has its copies
		if f != nil {
			f.Close()
		}
	}
	if err != nil {
		fr.close()
		return nil, err
	}
	fr.st = bufio.NewReader(io.LimitReader(fr.stR, statusLimit))
	if config != nil {
		fr.writeConfig(config)
	}
	return fr, nil
}

// inlineConfig is the largest payload writeConfig writes in the caller: an empty
// pipe takes it without blocking (a pipe holds 64 KiB).
const inlineConfig = 32 << 10

// writeConfig sends payload on the config pipe: at once when it fits the pipe, in
// the background otherwise (the box reads it as the run's clock ticks).
func (fr *forkRun) writeConfig(payload []byte) {
	write := func() {
		_, err := fr.cfgW.Write(payload)
		fr.cfgW.Close()
		fr.writeErr <- err
	}
	if len(payload) <= inlineConfig {
		write()
		return
	}
	go write()
}

// forked runs p as a fork of the template's zygote: a ready run when one of p's shape
// waits, a new fork otherwise. ok is false when the template could not take the run
// (no free uid, or the zygote is gone): the caller runs it cold, and nothing of it
// has started.
func (b *Backend) forked(ctx context.Context, t *template, p *sandbox.Prepared, res *sandbox.Result,
	out func(string, []byte)) (r *sandbox.Result, err error, ok bool) {
	lim := p.Limits
	cfg := b.initConfig(p)
	limits := proc.Resources{Memory: lim.Memory, Pids: int64(lim.Processes) + initPids}
	var payload bytes.Buffer
	if fr, pool := b.takeAnyReady(ctx, t, p, cfg); fr != nil {
		defer b.wantReady(pool)
		cfg.UID = fr.uid
		if err := cfg.Write(&payload, p.Stdin); err != nil {
			fr.close()
			return nil, err, true
		}
		// The run's own memory and process limits (setting them restarts the peak
		// memory on v1, as it was when the run got ready).
		if limits != fr.limits {
			fr.limits = limits
			if err := fr.g.Update(limits); err != nil {
				fr.close()
				return nil, fmt.Errorf("set the run's limits: %w", err), true
			}
		}
		started := time.Now()
		fr.writeConfig(payload.Bytes())
		b.log.Debug("native: ready run", "run", p.RunID, "kind", pool.name, "uid", fr.uid)
		r, err := b.supervise(ctx, p, res, out, fr, fr.base, started)
		return r, err, true
	}
	uid, free := t.takeUID()
	if !free {
		return nil, nil, false
	}
	cfg.UID = uid
	var shape bytes.Buffer
	if err := errors.Join(cfg.Write(&payload, p.Stdin), cfg.Shape().Write(&shape, nil)); err != nil {
		t.putUID(uid)
		return nil, err, true
	}
	started := time.Now()
	fr, err := b.launch(t, uid, limits, 'p', shape.Bytes(), payload.Bytes(), lim.Network == api.NetworkLoopback, p.Combined)
	if errors.Is(err, errNotTaken) {
		b.log.Warn("native: replacing the warm template", "err", err)
		b.tmplMu.Lock()
		if b.tmpl == t {
			b.dropTemplateLocked()
		}
		b.tmplMu.Unlock()
		return nil, nil, false
	}
	if err != nil {
		return nil, err, true
	}
	b.log.Debug("native: forked run", "run", p.RunID, "uid", uid)
	r, err = b.supervise(ctx, p, res, out, fr, proc.Usage{}, started)
	return r, err, true
}

// supervise enforces p's limits on a forked run, waits for its report and makes the
// result; base is the run's usage before its program started.
func (b *Backend) supervise(ctx context.Context, p *sandbox.Prepared, res *sandbox.Result, out func(string, []byte),
	fr *forkRun, base proc.Usage, started time.Time) (*sandbox.Result, error) {
	defer fr.close()
	lim, g := p.Limits, fr.g
	var (
		limitMu  sync.Mutex
		limitHit string
	)
	stopped := make(chan struct{})
	stop := func(limit string) {
		limitMu.Lock()
		first := limitHit == ""
		if first {
			limitHit = limit
		}
		limitMu.Unlock()
		_ = g.Kill()
		if first {
			close(stopped)
		}
	}
	streams := []*capped{{name: "stdout", limit: lim.Stdout, kind: api.LimitStdout, r: fr.outR}}
	if fr.errR != fr.outR {
		errStream := &capped{name: "stderr", limit: lim.Stderr, kind: api.LimitStderr, r: fr.errR}
		if p.Combined { // a ready run's own stderr pipe, unused: it closes at once
			errStream.limit = 0
		}
		streams = append(streams, errStream)
	}
	var readers sync.WaitGroup
	for _, s := range streams {
		readers.Go(func() { s.drain(out, stop) })
	}
	finished := make(chan struct{})
	wallTimer := time.AfterFunc(lim.WallTime, func() { stop(api.LimitWall) })
	defer wallTimer.Stop()
	go watchUsage(func() (time.Duration, error) {
		u, err := g.Usage()
		return u.CPU, err
	}, base.CPU, lim.CPUTime, finished, func() { stop(api.LimitCPU) })
	go func() {
		select {
		case <-ctx.Done():
			stop(api.LimitWall)
		case <-finished:
		}
	}()
	// The status line comes when pid 1 of the run's namespace has seen it empty (pid 1
	// is not in the run's cgroup: a killed run is reported too); the pipe closes
	// without one when pid 1 is gone.
	go func() {
		select {
		case <-stopped:
			// A kill reaches every process of the run's cgroup. A run that never got
			// there (its message stuck in a wedged zygote or pid 1, with the other ends
			// of its pipes) holds nothing we wait for past a grace period.
			select {
			case <-time.After(2 * time.Second):
				fr.stR.Close()
				for _, s := range streams {
					s.r.Close()
				}
			case <-finished:
			}
		case <-finished:
		}
	}()
	st, stErr := readStatusLine(fr.st)
	close(finished)
	if stErr != nil && g.Occupied() {
		_ = g.Kill()
	}
	// With its report, pid 1 has seen its namespace empty (pid 1 itself is not in the
	// run's cgroup: it waits for the next run): nothing is left to kill (a kill on
	// cgroup v1 is a freeze, milliseconds in a VM), and Close removes the cgroup.
	readers.Wait()
	wall := time.Since(started)
	if st.EndedNS > 0 {
		at := func(ns int64) time.Duration { return time.Unix(0, ns).Sub(started) }
		b.log.Debug("native: timings", "run", p.RunID, "program_started", at(st.ProgramNS),
			"box_empty", at(st.EndedNS), "result", wall)
	}
	usage, uerr := g.Usage()
	if werr := <-fr.writeErr; werr != nil && st.Stage == "" && !st.Started {
		return nil, fmt.Errorf("send the config: %w", werr)
	}

	var f sandbox.Facts
	for _, s := range streams {
		if s.name == "stderr" && p.Combined {
			continue
		}
		s.fill(res)
	}
	res.WallTime, res.CPUTime, res.PeakMemory = wall, usage.CPU-base.CPU, usage.MemoryPeak
	limitMu.Lock()
	f.Limit = limitHit
	limitMu.Unlock()
	if uerr != nil {
		return nil, fmt.Errorf("the run's usage: %w", uerr)
	}
	return b.verdict(p, res, st, f, usage.OOMKills-base.OOMKills, func() string {
		return fmt.Sprintf("the run's pid 1 ended without a report (%v)", stErr)
	})
}

// readStatusLine reads the report of a forked run's pid 1: one line, written once its
// namespace is empty, before it exits (its exit need not be waited for).
func readStatusLine(r *bufio.Reader) (boxinit.Status, error) {
	line, err := r.ReadBytes('\n')
	if len(line) == 0 {
		return boxinit.Status{}, fmt.Errorf("no status (%v)", err)
	}
	var st boxinit.Status
	return st, json.Unmarshal(line, &st)
}

// capped reads one output stream of a forked run, keeping up to limit bytes.
type capped struct {
	name  string
	limit int64
	kind  string // the limit's name in a result
	r     *os.File
	kept  []byte
	total int64
	over  bool
}

func (c *capped) drain(out func(string, []byte), stop func(string)) {
	defer c.r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.r.Read(buf)
		if n > 0 {
			if room := c.limit - int64(len(c.kept)); room > 0 {
				k := buf[:min(int64(n), room)]
				c.kept = append(c.kept, k...)
				if out != nil {
					out(c.name, k)
				}
			}
			c.total += int64(n)
			if c.total > c.limit && !c.over {
				c.over = true
				stop(c.kind)
			}
		}
		if err != nil { // EOF: every process of the run is gone
			return
		}
	}
}

func (c *capped) fill(r *sandbox.Result) {
	if c.name == "stdout" {
		r.Stdout, r.StdoutBytes, r.StdoutTruncated = string(c.kept), c.total, c.over
	} else {
		r.Stderr, r.StderrBytes, r.StderrTruncated = string(c.kept), c.total, c.over
	}
}
