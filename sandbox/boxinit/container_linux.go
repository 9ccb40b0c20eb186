package boxinit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A container's init runs as root with only the capabilities it needs to start the
// program as another user (SETUID, SETGID) and to kill what the program leaves behind
// (KILL); the program runs as Config.UID, which no other run shares, with none. The
// engine built the root file system, the tmpfs mounts and the limits of the cgroup;
// the init writes the input files, applies the rlimits and the filters, enforces the
// time limits and the output caps, and reports the end of the program in a frame.

// containerRules are what a container's program may do where, for Landlock: the
// image is read-only anyway; writing is for the tmpfs mounts.
var containerRules = []landlockRule{
	{"/", readOnly}, {"/proc", procFS},
	{work, writable}, {"/tmp", writable}, {"/dev/shm", writable},
	{"/dev/null", device}, {"/dev/zero", device}, {"/dev/full", device}, {"/dev/random", device},
	{"/dev/urandom", device}, {"/dev/tty", device},
}

// caught are the signals the init takes on a channel rather than let the Go runtime
// act on them (a SIGSEGV sent with kill(2) would crash it): the program, another
// user, cannot signal the init, but the engine can. SIGTERM (the engine's stop, and
// runbox's when the caller gives up) stops the program; the rest are dropped.
// Caught, not ignored: an ignored signal would stay ignored in the program. SIGCHLD,
// SIGURG and SIGPROF stay with the runtime.
var caught = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS,
	unix.SIGFPE, unix.SIGUSR1, unix.SIGSEGV, unix.SIGUSR2, unix.SIGPIPE, unix.SIGALRM, unix.SIGTERM,
	unix.SIGSTKFLT, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGXCPU, unix.SIGXFSZ,
	unix.SIGVTALRM, unix.SIGWINCH, unix.SIGIO, unix.SIGPWR, unix.SIGSYS,
}

func runContainer() {
	runtime.LockOSThread()
	// Not dumpable: the program, were it ever the same user, could not ptrace the init
	// or open its /proc files (its stdout among them).
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, caught...)
	for s := 34; s <= 64; s++ { // the real-time signals
		signal.Notify(sigs, unix.Signal(s))
	}
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		for fd := 3; fd < 1024; fd++ {
			unix.CloseOnExec(fd)
		}
	}
	c := &container{out: os.Stdout}
	go func() {
		for s := range sigs {
			if s == unix.SIGTERM {
				c.stop("wall")
			}
		}
	}()
	fail := func(stage string, err error) {
		c.report(Status{Stage: stage, Error: err.Error()})
		os.Exit(1)
	}
	cfg, files, stdin, err := readConfig(os.Stdin)
	configured := time.Now().UnixNano()
	if err != nil {
		fail("config", err)
	}
	c.cfg = cfg
	if cfg.UID <= 0 {
		fail("config", errors.New("no uid for the program"))
	}
	// The work directory belongs to the program's user and is not writable by root
	// without CAP_DAC_OVERRIDE: the files are written with that user's file system
	// identity, on this thread.
	if err := asUser(cfg.UID, func() error { return writeFiles(cfg.Files, files, cfg.UID) }); err != nil {
		fail("files", err)
	}
	for _, r := range cfg.Rlimits {
		if err := unix.Setrlimit(r.Resource, &unix.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			fail("rlimit", fmt.Errorf("rlimit %d: %w", r.Resource, err))
		}
	}
	cg := findCgroup()
	// The host cannot know whether the engine's kernel and seccomp profile let
	// Landlock through; the init asks, and goes without it when they do not.
	if _, err := LandlockABI(); err != nil {
		cfg.Landlock = false
	}
	if err := confine(cfg, containerRules, false); err != nil {
		fail("confine", err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		fail("pipe", err)
	}
	stderrR, stderrW := stdoutR, stdoutW
	if !cfg.Combined {
		if stderrR, stderrW, err = os.Pipe(); err != nil {
			fail("pipe", err)
		}
	}
	cpuBase, oomBase := cg.cpu(), cg.oomKills()
	// A stop that came before the program exists is honoured here; one that comes while
	// it is forked waits for the fork, so its kill(-1) reaches the program.
	c.limitMu.Lock()
	if c.limit != "" {
		c.limitMu.Unlock()
		// The box's memory so far (the init's own): a result always has one.
		st := Status{Limit: c.limit, ConfiguredNS: configured, PeakMemory: cg.peakMemory()}
		var ru unix.Rusage
		if st.PeakMemory <= 0 && unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
			st.PeakMemory = ru.Maxrss << 10
		}
		c.report(st)
		os.Exit(0)
	}
	child, err := spawn(cfg, []*os.File{stdin, stdoutW, stderrW}, cfg.UID)
	c.limitMu.Unlock()
	stdin.Close()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		fail("exec", err)
	}
	program := time.Now().UnixNano()
	var pumps sync.WaitGroup
	pumps.Add(1)
	go c.pump(&pumps, stdoutR, FrameStdout, cfg.Stdout, &c.stdoutBytes, "stdout")
	if !cfg.Combined {
		pumps.Add(1)
		go c.pump(&pumps, stderrR, FrameStderr, cfg.Stderr, &c.stderrBytes, "stderr")
	}
	if cfg.WallNS <= 0 {
		cfg.WallNS = int64(time.Hour)
	}
	wall := time.AfterFunc(time.Duration(cfg.WallNS), func() { c.stop("wall") })
	done := make(chan struct{})
	go c.watchCPU(cg, cpuBase, done)

	st := reap(child)
	close(done)
	wall.Stop()
	pumps.Wait()
	st.ConfiguredNS, st.ProgramNS, st.EndedNS = configured, program, time.Now().UnixNano()
	st.Limit = c.limitHit()
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_CHILDREN, &ru) == nil {
		st.CPUNS = unix.TimevalToNsec(ru.Utime) + unix.TimevalToNsec(ru.Stime)
		st.PeakMemory = ru.Maxrss << 10 // the largest process, when the cgroup does not say
	}
	if peak := cg.peakMemory(); peak > 0 {
		st.PeakMemory = peak
	}
	st.OOMKills = cg.oomKills() - oomBase
	st.StdoutBytes, st.StderrBytes = c.stdoutBytes.Load(), c.stderrBytes.Load()
	c.report(st)
	os.Exit(0)
}

// asUser runs f with uid's file system identity on this (locked) thread.
func asUser(uid int, f func() error) error {
	if err := unix.Setfsgid(uid); err != nil {
		return err
	}
	if err := unix.Setfsuid(uid); err != nil {
		return err
	}
	err := f()
	_ = unix.Setfsuid(0)
	_ = unix.Setfsgid(0)
	return err
}

type container struct {
	cfg   *Config
	outMu sync.Mutex
	out   *os.File

	stdoutBytes, stderrBytes atomic.Int64

	limitMu sync.Mutex
	limit   string
}

// report writes the status frame.
func (c *container) report(st Status) {
	b, _ := json.Marshal(st)
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_ = WriteFrame(c.out, FrameStatus, b)
}

// stop kills every process of the program for limit; the first limit is the one
// reported.
func (c *container) stop(limit string) {
	c.limitMu.Lock()
	if c.limit == "" {
		c.limit = limit
	}
	c.limitMu.Unlock()
	_ = unix.Kill(-1, unix.SIGKILL)
}

func (c *container) limitHit() string {
	c.limitMu.Lock()
	defer c.limitMu.Unlock()
	return c.limit
}

// pump forwards what the program writes on r as frames of type typ, up to one byte past
// limit (so the host sees the cap exceeded); past limit it stops the program and drains
// the pipe, counting, until the last writer is dead.
func (c *container) pump(wg *sync.WaitGroup, r *os.File, typ byte, limit int64, count *atomic.Int64, name string) {
	defer wg.Done()
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			total := count.Add(int64(n))
			if fwd := min(int64(n), limit+1-(total-int64(n))); fwd > 0 {
				c.outMu.Lock()
				_ = WriteFrame(c.out, typ, buf[:fwd])
				c.outMu.Unlock()
			}
			if total > limit {
				c.stop(name)
			}
		}
		if err != nil {
			return
		}
	}
}

// watchCPU stops the program when the container's CPU time since base reaches the
// limit. The time can grow at most as fast as there are CPUs, so the next look is never
// earlier than the limit could be reached. Without a readable cgroup, the per-process
// RLIMIT_CPU is the guard.
func (c *container) watchCPU(cg cgroupFiles, base time.Duration, done <-chan struct{}) {
	if cg.cpuFile == "" || c.cfg.CPUNS <= 0 {
		return
	}
	limit := time.Duration(c.cfg.CPUNS)
	cpus := time.Duration(max(runtime.NumCPU(), 1))
	next := limit / cpus
	for {
		select {
		case <-done:
			return
		case <-time.After(max(next, 5*time.Millisecond)):
		}
		used := cg.cpu() - base
		if used >= limit {
			c.stop("cpu")
			return
		}
		next = (limit - used) / cpus
	}
}

// cgroupFiles are the container's own cgroup files the init reads: the engine mounts
// the container's cgroup at /sys/fs/cgroup (v2), or each controller's below it (v1).
type cgroupFiles struct {
	cpuFile, peakFile, oomFile string
	v2                         bool
}

func findCgroup() cgroupFiles {
	var cg cgroupFiles
	readable := func(p string) bool { _, err := os.Stat(p); return err == nil }
	switch {
	case readable("/sys/fs/cgroup/cpu.stat"):
		cg.v2, cg.cpuFile = true, "/sys/fs/cgroup/cpu.stat"
		if readable("/sys/fs/cgroup/memory.peak") {
			cg.peakFile = "/sys/fs/cgroup/memory.peak"
		}
		if readable("/sys/fs/cgroup/memory.events") {
			cg.oomFile = "/sys/fs/cgroup/memory.events"
		}
	default:
		for _, p := range []string{"/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"} {
			if readable(p) {
				cg.cpuFile = p
				break
			}
		}
		if p := "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"; readable(p) {
			cg.peakFile = p
		}
		if p := "/sys/fs/cgroup/memory/memory.oom_control"; readable(p) {
			cg.oomFile = p
		}
	}
	return cg
}

// cpu returns the cgroup's CPU time, 0 when unknown.
func (cg cgroupFiles) cpu() time.Duration {
	if cg.v2 {
		return time.Duration(readValue(cg.cpuFile, "usage_usec")) * time.Microsecond
	}
	return time.Duration(readValue(cg.cpuFile, ""))
}

// oomKills returns how many processes the kernel killed in the cgroup for memory (the
// oom_kill line of memory.events, or of memory.oom_control in v1), 0 when unknown.
func (cg cgroupFiles) oomKills() int { return int(readValue(cg.oomFile, "oom_kill")) }

// peakMemory returns the cgroup's peak memory, 0 when unknown.
func (cg cgroupFiles) peakMemory() int64 { return readValue(cg.peakFile, "") }

// readValue returns the number file holds, or with key the number on its line that
// starts with key; 0 when there is none.
func readValue(file, key string) int64 {
	if file == "" {
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok && (key == "" || bytes.HasPrefix(v, []byte(" "))) {
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}
