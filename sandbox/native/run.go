package native

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

func (b *Backend) run(ctx context.Context, p *sandbox.Prepared, res *sandbox.Result, out func(string, []byte)) (*sandbox.Result, error) {
	lim := p.Limits
	bx, err := b.take()
	if err != nil {
		return nil, err
	}
	if out != nil {
		bx.stdoutTap.Set(out, lim.Stdout)
		bx.stderrTap.Set(out, lim.Stderr)
		defer bx.stdoutTap.Set(nil, 0)
		defer bx.stderrTap.Set(nil, 0)
	}
	defer b.used(bx)
	defer bx.stR.Close()
	defer bx.release()
	pr := bx.proc
	setup := pr.SetOutputLimits(lim.Stdout, lim.Stderr)
	if lim.Memory != bx.memory || int64(lim.Processes) != bx.processes {
		setup = errors.Join(setup, pr.UpdateResources(proc.Resources{Memory: lim.Memory, Pids: int64(lim.Processes) + initPids}))
	}
	base := bx.base
	if base == (proc.Usage{}) { // a box made for this run: nothing read it yet
		var uerr error
		base, uerr = pr.Usage()
		setup = errors.Join(setup, uerr)
	}
	if setup != nil {
		bx.discard()
		return nil, fmt.Errorf("set the box's limits: %w", setup)
	}
	started := time.Now()
	b.log.Debug("native: run", "run", p.RunID, "init", pr.Pid())

	// The config goes in while the run's clock ticks: a box that does not read it
	// is killed by the wall limit like any other.
	writeErr := make(chan error, 1)
	go func() {
		err := b.initConfig(p).Write(bx.cfgW, p.Stdin)
		bx.cfgW.Close()
		writeErr <- err
	}()
	var limitHit string
	var limitMu sync.Mutex
	stop := func(limit string) {
		limitMu.Lock()
		if limitHit == "" {
			limitHit = limit
		}
		limitMu.Unlock()
		_ = pr.SignalTree(syscall.SIGKILL)
	}
	wallTimer := time.AfterFunc(lim.WallTime, func() { stop(api.LimitWall) })
	defer wallTimer.Stop()
	go watchCPU(pr, base.CPU, lim.CPUTime, func() { stop(api.LimitCPU) })
	go func() {
		select {
		case <-ctx.Done():
			stop(api.LimitWall)
		case <-pr.Done():
		}
	}()

	pres, err := pr.Wait(context.Background())
	if pres == nil {
		return nil, fmt.Errorf("wait for the box: %w", err)
	}
	wall := time.Since(started)
	if werr := <-writeErr; werr != nil && pres.Status == proc.StatusOK {
		return nil, fmt.Errorf("send the config: %w", werr)
	}
	st, stErr := readStatus(bx.stR)
	if st.EndedNS > 0 {
		at := func(ns int64) time.Duration { return time.Unix(0, ns).Sub(started) }
		b.log.Debug("native: timings", "run", p.RunID, "configured", at(st.ConfiguredNS),
			"program_started", at(st.ProgramNS), "box_empty", at(st.EndedNS), "result", wall)
	}

	f := sandbox.Captured(res, pres, lim)
	f.Exited, f.ExitCode, f.Signal = false, 0, 0 // the init's; the program's come from its report
	res.WallTime = wall
	var oomKills int
	if u := pres.Usage; u != nil {
		res.CPUTime, res.PeakMemory, oomKills = u.CPU-base.CPU, u.MemoryPeak, u.OOMKills-base.OOMKills
	}

	limitMu.Lock()
	if limitHit != "" { // our own timers (wall, cpu) stop the box through proc, which saw a kill
		f.Limit = limitHit
	}
	limitMu.Unlock()
	return b.verdict(p, res, st, f, oomKills, func() string {
		return fmt.Sprintf("the box's init ended (%s) without a report (%v); its stderr: %q",
			describe(pres), stErr, tail(pres.Stderr))
	})
}

// verdict turns the init's report st, the facts f the host saw and the OOM kills of
// the run's cgroup into the result; unreported describes a box that ended without a
// report.
func (b *Backend) verdict(p *sandbox.Prepared, res *sandbox.Result, st boxinit.Status, f sandbox.Facts, oomKills int,
	unreported func() string) (*sandbox.Result, error) {
	switch {
	case st.Stage != "":
		if oomKills > 0 {
			break // the kernel killed the program as it started; the verdict is oom
		}
		if st.Stage == "exec" {
			if l := p.Language; l != nil && strings.Contains(st.Error, l.Interpreter) {
				return nil, fmt.Errorf("the %s interpreter %s could not be started (%s): install it on the host, whose /usr the box sees (Debian: apt-get install %s)",
					l.Name, l.Interpreter, st.Error, l.Package)
			}
			return nil, fmt.Errorf("the program could not be started: %s", st.Error)
		}
		return nil, fmt.Errorf("box setup failed at %s: %s", st.Stage, st.Error)
	case st.Started:
		f.Exited, f.ExitCode, f.Signal = st.Exited, st.ExitCode, syscall.Signal(st.Signal)
	case f.Limit != "" || oomKills > 0:
		// We, or the kernel, killed the box before the init could report.
	default:
		return nil, errors.New(unreported())
	}
	if f.Limit != "" || (!st.Started && oomKills > 0) {
		f.Exited, f.ExitCode, f.Signal = false, 0, syscall.SIGKILL
	}
	// Any process of the run killed for memory makes the verdict oom, even when the
	// main one carried on: the limit was hit, and what the run computed is suspect.
	f.OOMKilled = oomKills > 0
	p.Finish(res, f)
	return res, nil
}

func (b *Backend) initConfig(p *sandbox.Prepared) *boxinit.Config {
	cfg := boxinit.NewConfig(p.Command, p.Env, p.Limits)
	cfg.Combined, cfg.Landlock = p.Combined, b.landlock
	for _, f := range p.Files {
		cfg.AddFile(f.Name, f.Content, f.Executable)
	}
	return cfg
}

func readStatus(r io.Reader) (boxinit.Status, error) {
	var st boxinit.Status
	b, err := io.ReadAll(io.LimitReader(r, statusLimit))
	if err != nil {
		return st, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return st, errors.New("no status")
	}
	return st, json.Unmarshal(b, &st)
}

// watchCPU kills the run when its cgroup's CPU time reaches limit. The time can grow
// at most as fast as there are CPUs, so the next look is never earlier than it could
// be reached: a few reads per run.
func watchCPU(p *proc.Process, base, limit time.Duration, kill func()) {
	watchUsage(func() (time.Duration, error) {
		u, err := p.Usage()
		return u.CPU, err
	}, base, limit, p.Done(), kill)
}

// watchUsage is watchCPU's loop over a reader of the CPU time.
func watchUsage(cpu func() (time.Duration, error), base, limit time.Duration, done <-chan struct{}, kill func()) {
	cpus := time.Duration(max(runtime.NumCPU(), 1))
	next := limit / cpus
	for {
		select {
		case <-done:
			return
		case <-time.After(max(next, 5*time.Millisecond)):
		}
		c, err := cpu()
		if err != nil {
			return
		}
		used := c - base
		if used >= limit {
			kill()
			return
		}
		next = (limit - used) / cpus
	}
}

func describe(r *proc.Result) string {
	if r.Signal != 0 {
		return proc.SignalName(r.Signal)
	}
	return "exit " + strconv.Itoa(r.ExitCode)
}

func tail(b []byte) string {
	if len(b) > 512 {
		b = b[len(b)-512:]
	}
	return string(b)
}
