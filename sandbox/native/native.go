package native

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native/boxinit"
)

// Name is the name the backend registers under.
const Name = "native"

// DefaultHostUID is the first host uid of a box: the box's root (its init) is this uid
// on the host, and the program's uid 1000 is DefaultHostUID+1000. No host user owns
// these uids, so a process of a box owns nothing outside it.
const DefaultHostUID = 1_500_000_000

const (
	// initPids is how many processes and threads the init itself may have, over the
	// program's own limit: the box's cgroup pids limit is the sum, a backstop behind
	// the program's exact RLIMIT_NPROC.
	initPids = 32
	// statusLimit bounds the init's report.
	statusLimit = 64 << 10
)

func init() {
	sandbox.Register(Name, func(ctx context.Context) (sandbox.Backend, error) { return New(ctx, Config{}) })
}

// Config configures the native backend. The zero value is the default.
type Config struct {
	// HostUID is the first of the host uids the boxes map to (0: DefaultHostUID).
	HostUID uint32
	// Warm is how many boxes are kept built and waiting for a run, so that a run
	// does not wait for namespaces, cgroups and mounts to be made (0: the number of
	// CPUs; < 0: none). A warm box has run nothing: each run still gets a box of its
	// own, used once. The pool fills after the first run.
	Warm int
	// Logger receives debug records of each run; nil discards.
	Logger *slog.Logger
}

// Backend runs specs in Linux namespaces with a cgroup per run, seccomp, Landlock
// (when the kernel has it), rlimits and a fresh root file system. It needs root (or
// CAP_SYS_ADMIN with delegated cgroups). Safe for concurrent use.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	landlock bool

	mu     sync.Mutex
	closed bool
	runs   sync.WaitGroup
	warm   chan *box
	wanted chan struct{}  // one per warm box to build
	idle   map[int]string // warm boxes: init pid → cgroup name, for Leftovers
	// warming is held (read) by the filler from a box's start until it is in idle,
	// and taken by Leftovers, so that no warm box is ever seen half registered.
	warming  sync.RWMutex
	warmOnce sync.Once
	stopWarm chan struct{}
	filler   sync.WaitGroup
}

var _ sandbox.Backend = (*Backend)(nil)

// New checks that this host can run boxes and returns the backend. Cgroups that
// earlier runbox processes left behind (after a SIGKILL) are removed on the way.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("sandbox/native: needs Linux")
	}
	if cfg.HostUID == 0 {
		cfg.HostUID = DefaultHostUID
	}
	if cfg.Warm == 0 {
		cfg.Warm = runtime.NumCPU()
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, stopWarm: make(chan struct{}), idle: make(map[int]string)}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Warm > 0 {
		b.warm = make(chan *box, cfg.Warm)
		b.wanted = make(chan struct{}, cfg.Warm)
	}
	_ = proc.RemoveStaleCgroups() // best effort: a box without a cgroup fails on its own, with the reason
	if abi, err := boxinit.LandlockABI(); err == nil && abi >= 1 {
		b.landlock = true
	}
	return b, nil
}

// Name returns "native".
func (b *Backend) Name() string { return Name }

// Close waits for runs in progress and kills the warm boxes; later runs fail with
// sandbox.ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stopWarm)
	b.filler.Wait()
	b.runs.Wait()
	if b.warm != nil {
		close(b.warm)
		for bx := range b.warm {
			bx.discard()
		}
	}
	return nil
}

// Run runs spec in a new box. See sandbox.Backend.
func (b *Backend) Run(ctx context.Context, spec sandbox.Spec) (*sandbox.Result, error) {
	p, err := sandbox.Prepare(spec)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, sandbox.ErrClosed
	}
	b.runs.Add(1)
	b.mu.Unlock()
	defer b.runs.Done()

	res := p.NewResult(Name)
	r, err := b.run(ctx, p, res)
	if err != nil {
		return sandbox.Fail(res, err)
	}
	return r, nil
}

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
func (b *Backend) spawn() (*box, error) {
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
	uid := b.cfg.HostUID
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(uid), Size: 1}, {ContainerID: boxinit.UID, HostID: int(uid) + boxinit.UID, Size: 1}}
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
		ExtraFiles:  []*os.File{cfgR, stW},
		Stdout:      []proc.Sink{proc.Capture(sandbox.MaxOutput)},
		Stderr:      []proc.Sink{proc.Capture(sandbox.MaxOutput)},
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
	bx := &box{proc: pr, cfgW: cfgW, stR: stR, memory: sandbox.DefaultMemory, processes: sandbox.DefaultProcesses}
	for _, ns := range []string{"mnt", "net"} {
		if f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pr.Pid(), ns)); err == nil {
			bx.ns = append(bx.ns, f)
		}
	}
	return bx, nil
}

// take returns a warm box, or a new one when none is ready, and has the pool refilled.
func (b *Backend) take() (*box, error) {
	if b.warm == nil {
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

func (b *Backend) run(ctx context.Context, p *sandbox.Prepared, res *sandbox.Result) (*sandbox.Result, error) {
	lim := p.Limits
	bx, err := b.take()
	if err != nil {
		return nil, err
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
		cfg, contents := b.initConfig(p)
		err := writeConfig(bx.cfgW, cfg, contents, p.Stdin)
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
		return nil, fmt.Errorf("the box's init ended (%s) without a report (%v); its stderr: %q",
			describe(pres), stErr, tail(pres.Stderr))
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

func (b *Backend) initConfig(p *sandbox.Prepared) (*boxinit.Config, [][]byte) {
	lim := p.Limits
	cpuSec := uint64(math.Ceil(lim.CPUTime.Seconds()))
	cfg := &boxinit.Config{
		Argv:      p.Command,
		Env:       p.Env,
		StdinSize: int64(len(p.Stdin)),
		Combined:  p.Combined,
		Loopback:  lim.Network == api.NetworkLoopback,
		TmpSize:   lim.TmpSize,
		TmpInodes: lim.TmpInodes,
		Landlock:  b.landlock,
		Rlimits: []boxinit.Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Cur: uint64(lim.OpenFiles), Max: uint64(lim.OpenFiles)},
			{Resource: unix.RLIMIT_FSIZE, Cur: uint64(lim.FileSize), Max: uint64(lim.FileSize)},
			{Resource: unix.RLIMIT_STACK, Cur: uint64(lim.Stack), Max: uint64(lim.Stack)},
			{Resource: unix.RLIMIT_CORE},
			// The program's processes and threads: counted per uid in the box's user
			// namespace, so the init's own threads (uid 0) are not, and the limit is
			// exact. The seccomp filter keeps the program from raising it.
			{Resource: unix.RLIMIT_NPROC, Cur: uint64(lim.Processes), Max: uint64(lim.Processes)},
			// A per-process backstop behind the cgroup's CPU watch (SIGXCPU, then SIGKILL).
			{Resource: unix.RLIMIT_CPU, Cur: cpuSec + 1, Max: cpuSec + 2},
		},
	}
	contents := make([][]byte, len(p.Files))
	for i, f := range p.Files {
		cfg.Files = append(cfg.Files, boxinit.File{Name: f.Name, Size: int64(len(f.Content)), Executable: f.Executable})
		contents[i] = f.Content
	}
	return cfg, contents
}

func writeConfig(w io.Writer, cfg *boxinit.Config, contents [][]byte, stdin []byte) error {
	line, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(append(line, '\n'))
	for _, c := range contents {
		bw.Write(c)
	}
	bw.Write(stdin)
	return bw.Flush()
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
	cpus := time.Duration(max(runtime.NumCPU(), 1))
	next := limit / cpus
	for {
		select {
		case <-p.Done():
			return
		case <-time.After(max(next, 5*time.Millisecond)):
		}
		u, err := p.Usage()
		if err != nil {
			return
		}
		used := u.CPU - base
		if used >= limit {
			kill()
			return
		}
		next = (limit - used) / cpus
	}
}

func describe(r *proc.Result) string {
	if r.Signal != 0 {
		return unix.SignalName(r.Signal)
	}
	return "exit " + strconv.Itoa(r.ExitCode)
}

func tail(b []byte) string {
	if len(b) > 512 {
		b = b[len(b)-512:]
	}
	return string(b)
}

// Leftovers lists what runs of this process left on the host: resource cgroups that
// still exist, and processes running as a box's uids, warm boxes aside. Empty between
// runs. A finished run's cgroup is removed in the background; Leftovers gives that up
// to a second.
func (b *Backend) Leftovers(ctx context.Context) ([]string, error) {
	var out []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		out = b.leftovers()
		if len(out) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
}

// HeldProcesses returns the pids of the warm boxes' inits: processes the backend
// keeps on purpose between runs (each waits for a run, with nothing of a run in it).
func (b *Backend) HeldProcesses() []int {
	b.warming.Lock()
	defer b.warming.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	pids := make([]int, 0, len(b.idle))
	for pid := range b.idle {
		pids = append(pids, pid)
	}
	return pids
}

func (b *Backend) leftovers() []string {
	b.warming.Lock()
	defer b.warming.Unlock()
	b.mu.Lock()
	idle := make(map[int]bool, len(b.idle))
	idleCg := make(map[string]bool, len(b.idle))
	for pid, cg := range b.idle {
		idle[pid], idleCg[cg] = true, true
	}
	b.mu.Unlock()
	var out []string
	prefix := fmt.Sprintf("runbox-proc-%d-r", os.Getpid())
	for _, ctrl := range []string{"memory", "pids", "cpuacct", "freezer"} {
		own, err := ownCgroup(ctrl)
		if err != nil {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup", ctrl, own)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) && !idleCg[e.Name()] {
				out = append(out, "cgroup "+filepath.Join(dir, e.Name()))
			}
		}
	}
	// Only this process's boxes: another runbox (or test binary) on the host has its
	// own. A box's processes cannot leave its pid namespace, so they stay descendants.
	parent := make(map[int]int)
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if i := strings.LastIndexByte(string(data), ')'); i > 0 {
			if fields := strings.Fields(string(data[i+1:])); len(fields) > 1 {
				parent[pid], _ = strconv.Atoi(fields[1])
			}
		}
	}
	ours := func(pid int) bool {
		for range 64 {
			pid = parent[pid]
			if pid == os.Getpid() {
				return true
			}
			if pid <= 1 {
				return false
			}
		}
		return false
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, f := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if idle[pid] || !ours(pid) {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uid uint64
		var state string
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if fields := strings.Fields(v); len(fields) > 0 {
					uid, _ = strconv.ParseUint(fields[0], 10, 32)
				}
			}
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				state = strings.TrimSpace(v)
			}
		}
		if uid >= uint64(b.cfg.HostUID) && uid <= uint64(b.cfg.HostUID)+boxinit.UID && !strings.HasPrefix(state, "Z") {
			out = append(out, fmt.Sprintf("process %d (uid %d, %s)", pid, uid, state))
		}
	}
	return out
}

// ownCgroup returns this process's cgroup path in a v1 controller, or v2 for "".
func ownCgroup(controller string) (string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" {
			return parts[2], nil
		}
		for _, c := range strings.Split(parts[1], ",") {
			if controller != "" && c == controller {
				return parts[2], nil
			}
		}
	}
	return "", fmt.Errorf("no %q cgroup", controller)
}
