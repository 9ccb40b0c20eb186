package native

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

// box is a started init waiting for its config: namespaces, cgroup and root are made.
type box struct {
	proc *proc.Process
	cfgW *os.File // the config goes here
	stR  *os.File // the init's report comes here
	// ns holds the box's mount and network namespaces open, so that the init's
	// exit does not tear them down (unmounting a dozen file systems costs the
	// kernel about a millisecond): release does, after the result is out.
	ns []*os.File
	// base is the box's usage when it was ready (the init's own), which a run's
	// usage is counted from; memory and processes are the limits its cgroup has.
	base              proc.Usage
	memory, processes int64
	warm              bool // it came from the warm pool
	// taps pass the output on as it comes, to a streamed run.
	stdoutTap, stderrTap *sandbox.Tap
}

func (bx *box) discard() {
	bx.cfgW.Close()
	_ = bx.proc.SignalTree(syscall.SIGKILL)
	_, _ = bx.proc.Wait(context.Background())
	bx.stR.Close()
	bx.release()
}

// settle waits until the init is done building the box and blocks for its config (its
// CPU time stops growing), then records the usage a run is counted from.
func (bx *box) settle() {
	var last time.Duration
	for range 50 {
		u, err := bx.proc.Usage()
		if err != nil {
			return
		}
		if last != 0 && u.CPU-last < 50*time.Microsecond {
			bx.base = u
			return
		}
		last = u.CPU
		time.Sleep(2 * time.Millisecond)
	}
}

// release drops the box's namespaces, in the background.
func (bx *box) release() {
	ns := bx.ns
	bx.ns = nil
	if len(ns) > 0 {
		go func() {
			for _, f := range ns {
				f.Close()
			}
		}()
	}
}

// spawn starts a box with the largest limits; the run sets its own before it sends
// the config.
func (b *Backend) spawn() (*box, error) { return b.spawnWith(nil, 1) }

// spawnWith starts a box whose program's uid is one of users from boxinit.UID up,
// with extra, when not nil, as the init's boxinit.ZygoteFD.
func (b *Backend) spawnWith(extra *os.File, users int) (*box, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, err
	}
	stdoutTap, stderrTap := sandbox.NewTap("stdout"), sandbox.NewTap("stderr")
	uid := b.cfg.HostUID
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(uid), Size: 1}, {ContainerID: boxinit.UID, HostID: int(uid) + boxinit.UID, Size: users}}
	files := []*os.File{cfgR, stW}
	if extra != nil {
		files = append(files, extra)
	}
	cmd := &proc.Cmd{
		Path: "/proc/self/exe",
		Args: []string{boxinit.Arg0},
		Env:  []string{boxinit.Env + "=1", "GOMAXPROCS=1", "GOGC=off"},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP,
			UidMappings:                ids,
			GidMappings:                ids,
			GidMappingsEnableSetgroups: true,
		},
		// root of the box, so that what the init creates has an owner there
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		ExtraFiles:  files,
		Stdout:      []proc.Sink{proc.Capture(sandbox.MaxOutput), proc.Writer(stdoutTap)},
		Stderr:      []proc.Sink{proc.Capture(sandbox.MaxOutput), proc.Writer(stderrTap)},
		OutputLimit: sandbox.MaxOutput,
		StopSignal:  syscall.SIGKILL,
		Grace:       -1,
		Containment: proc.ContainCgroup,
		// The default limits, which most runs keep; a run with others sets its own.
		Resources: &proc.Resources{Memory: sandbox.DefaultMemory, Pids: sandbox.DefaultProcesses + initPids},
		Logger:    b.log,
	}
	pr, err := cmd.Start(context.Background())
	cfgR.Close()
	stW.Close()
	if err != nil {
		cfgW.Close()
		stR.Close()
		return nil, fmt.Errorf("start the box: %w", err)
	}
	bx := &box{proc: pr, cfgW: cfgW, stR: stR, memory: sandbox.DefaultMemory, processes: sandbox.DefaultProcesses,
		stdoutTap: stdoutTap, stderrTap: stderrTap}
	for _, ns := range []string{"mnt", "net"} {
		if f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pr.Pid(), ns)); err == nil {
			bx.ns = append(bx.ns, f)
		}
	}
	return bx, nil
}

// take returns a warm box, or a new one when none is ready, and has the pool refilled.
func (b *Backend) take() (*box, error) {
	if b.warm == nil || !b.coldPool() {
		return b.spawn()
	}
	b.warmOnce.Do(func() {
		for range cap(b.warm) {
			b.wanted <- struct{}{}
		}
		b.filler.Add(1)
		go b.fill()
	})
	select {
	case bx := <-b.warm:
		b.mu.Lock()
		delete(b.idle, bx.proc.Pid())
		b.mu.Unlock()
		select {
		case <-bx.proc.Done(): // died while waiting: make another
			bx.discard()
			b.used(bx)
		default:
			return bx, nil
		}
	default:
	}
	return b.spawn()
}

// fill keeps the warm pool full until Close.
func (b *Backend) fill() {
	defer b.filler.Done()
	for {
		// A box is built when one was used up and its run is over: building one
		// (namespaces, mounts, a Go start) takes locks and CPU the run would feel.
		select {
		case <-b.wanted:
		case <-b.stopWarm:
			return
		}
		b.warming.RLock()
		bx, err := b.spawn()
		if err == nil {
			bx.settle()
			b.mu.Lock()
			b.idle[bx.proc.Pid()] = bx.proc.CgroupName()
			b.mu.Unlock()
		}
		b.warming.RUnlock()
		if err != nil {
			b.log.Debug("native: warm box", "err", err)
			select {
			case <-b.stopWarm:
				return
			case <-time.After(time.Second):
				continue
			}
		}
		bx.warm = true
		b.warm <- bx // never blocks: no more boxes are wanted than the pool holds
	}
}

// used asks the filler for a box in place of a warm one a run took, once the run is over.
func (b *Backend) used(bx *box) {
	if bx.warm {
		select {
		case b.wanted <- struct{}{}:
		default:
		}
	}
}
