package native

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
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

// readyStart bounds the wait for a ready run to say it is ready.
const readyStart = 10 * time.Second

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

// readyCount is how many ready runs the backend keeps: Config.Warm (0: one per CPU).
func (b *Backend) readyCount() int {
	if b.cfg.Warm > 0 {
		return b.cfg.Warm
	}
	return runtime.NumCPU()
}

// defaultConfig is the config ready runs are made with (the default limits), and
// their cgroup's limits; New works them out once.
func (b *Backend) defaultConfig() (*boxinit.Config, proc.Resources, error) {
	p, err := sandbox.Prepare(sandbox.Spec{Command: []string{"/bin/true"}})
	if err != nil {
		return nil, proc.Resources{}, err
	}
	lim := p.Limits
	return b.initConfig(p), proc.Resources{Memory: lim.Memory, Pids: int64(lim.Processes) + initPids}, nil
}

// prepareReady makes one ready run on t and waits until its program is confined.
func (b *Backend) prepareReady(t *template) (*forkRun, error) {
	cfg := *b.readyCfg
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
	fr, err := b.launch(t, uid, b.readyLimits, payload.Bytes(), true, false, false)
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

// takeReady returns a ready run of cfg's shape made on t, or nil.
func (b *Backend) takeReady(t *template, cfg *boxinit.Config) *forkRun {
	if b.readyCfg == nil || shape(cfg) != b.readyShape {
		return nil
	}
	for {
		select {
		case fr := <-b.ready:
			b.forgetReady(fr)
			if fr.t == t && fr.waiting() {
				return fr
			}
			fr.close() // made by a template that is gone, or dead with it
		default:
			return nil
		}
	}
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

// wantReady asks the filler for one more ready run.
func (b *Backend) wantReady() {
	select {
	case b.readyWanted <- struct{}{}:
	default:
	}
}

// fillReady keeps readyCount ready runs made on the current template, until Close.
func (b *Backend) fillReady() {
	defer b.filler.Done()
	for {
		select {
		case <-b.readyWanted:
		case <-b.stopWarm:
			return
		}
		b.tmplMu.Lock()
		t := b.tmpl
		b.tmplMu.Unlock()
		if t == nil {
			continue // asked again when a template is ready
		}
		fr, err := b.prepareReady(t)
		if err != nil {
			b.log.Debug("native: ready run", "err", err)
			select {
			case <-b.stopWarm:
				return
			case <-time.After(100 * time.Millisecond):
				b.wantReady()
				continue
			}
		}
		b.mu.Lock()
		b.readyNames[fr.g.Name()] = true
		b.mu.Unlock()
		select {
		case b.ready <- fr:
		default:
			b.forgetReady(fr)
			fr.close() // more than wanted
		}
	}
}

// startReady starts the filler, once, and asks it for readyCount ready runs.
func (b *Backend) startReady() {
	if b.ready == nil || b.readyCfg == nil {
		return
	}
	b.readyOnce.Do(func() {
		b.filler.Add(1)
		go b.fillReady()
	})
	for range cap(b.ready) {
		b.wantReady()
	}
}

// closeReady gives up the ready runs waiting (Close, or their template died).
func (b *Backend) closeReady() {
	for {
		select {
		case fr := <-b.ready:
			b.forgetReady(fr)
			fr.close()
		default:
			return
		}
	}
}

// forgetReady drops a ready run taken from the pool from what Leftovers holds.
func (b *Backend) forgetReady(fr *forkRun) {
	b.mu.Lock()
	delete(b.readyNames, fr.g.Name())
	b.mu.Unlock()
}
