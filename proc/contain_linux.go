package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Containment kinds reported in Result.Containment, finer than the requested values.
const (
	ContainedCgroupV2       Containment = "cgroup_v2"
	ContainedCgroupV1Freeze Containment = "cgroup_v1_freezer"
)

// tree is a started process and everything it spawned, as far as the containment reaches.
type tree interface {
	// signal sends sig to every process of the tree (best effort).
	signal(sig syscall.Signal) error
	// kill sends SIGKILL to every process of the tree.
	kill() error
	// release frees what the containment holds; the tree must be dead.
	release()
	containment() Containment
}

// groupTree reaches the child's process group. The pgid cannot be reused while the
// leader is unreaped or any member lives, and the leader is reaped only after the last
// kill, so signaling -pgid never hits a stranger.
type groupTree struct{ pgid int }

func (g groupTree) signal(sig syscall.Signal) error {
	if g.pgid <= 1 {
		return nil // kill(-0) would signal our own group, kill(-1) everything
	}
	return ignoreESRCH(syscall.Kill(-g.pgid, sig))
}
func (g groupTree) kill() error              { return g.signal(syscall.SIGKILL) }
func (g groupTree) release()                 {}
func (g groupTree) containment() Containment { return ContainProcessGroup }

// leaderTree reaches only the child itself (ContainNone).
type leaderTree struct{ p *os.Process }

func (l leaderTree) signal(sig syscall.Signal) error {
	if err := l.p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}
func (l leaderTree) kill() error              { return l.signal(syscall.SIGKILL) }
func (l leaderTree) release()                 {}
func (l leaderTree) containment() Containment { return ContainNone }

func ignoreESRCH(err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// cgroupBox is a cgroup made for one run. The child's process group is signaled too, so
// a stop signal reaches the group even while the cgroup is being listed.
type cgroupBox struct {
	group groupTree
	v2    *cgroup2.Manager
	v1    cgroup1.Cgroup
	dir   string
	fd    int // v2: O_PATH fd of dir, for clone3 into the cgroup; -1 on v1

	// file names used on the hot path, built once per cgroup
	eventsFile, procsFile, tasksFile string
	// vacated is set when a check after the run found the cgroup empty: nothing can
	// enter an empty cgroup of ours, so release need not look again.
	vacated bool
	// resources marks a cgroup made for Cmd.Resources: it has the memory, pids and
	// CPU accounting controllers, is used once, and is removed after the run.
	resources bool
	// v1: the tasks files of each controller's cgroup, which the forking thread joins.
	v1Tasks []string
	// dirs are the cgroup's directories (one per v1 controller, or the v2 one), which
	// remove takes down with rmdir, children first.
	dirs []string
	// files the usage is read from
	cpuFile, peakFile, oomFile string
}

func (c *cgroupBox) containment() Containment {
	if c.v2 != nil {
		return ContainedCgroupV2
	}
	return ContainedCgroupV1Freeze
}

func (c *cgroupBox) signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return c.kill()
	}
	_ = c.group.signal(sig)
	pids, err := c.members()
	for _, pid := range pids {
		_ = ignoreESRCH(syscall.Kill(pid, sig))
	}
	return err
}

// occupied reports whether any process is left in the cgroup or below it, with one or
// two small file reads: the hot-path check after every run.
func (c *cgroupBox) occupied() bool {
	if c.v2 != nil {
		var buf [128]byte
		n, err := readSmall(c.eventsFile, buf[:])
		return err != nil || !strings.Contains(string(buf[:n]), "populated 0")
	}
	var st unix.Stat_t
	if err := unix.Stat(c.dir, &st); err != nil || st.Nlink > 2 {
		return true // a sub-cgroup was made inside: take the slow, recursive path
	}
	var buf [16]byte
	n, err := readSmall(c.procsFile, buf[:])
	return err != nil || n > 0
}

// readSmall reads the start of a file with three system calls and no allocation.
func readSmall(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.Read(fd, buf)
}

func (c *cgroupBox) members() ([]int, error) {
	var pids []int
	if c.v2 != nil {
		ps, err := c.v2.Procs(true)
		for _, p := range ps {
			pids = append(pids, int(p))
		}
		return pids, err
	}
	ps, err := c.v1.Processes(cgroup1.Freezer, true)
	for _, p := range ps {
		pids = append(pids, p.Pid)
	}
	return pids, err
}

func (c *cgroupBox) kill() error {
	if c.v2 != nil {
		return c.v2.Kill()
	}
	// v1 has no cgroup.kill: freeze so nothing forks while we list, kill all, thaw so
	// the killed can die. An empty cgroup is left alone: nothing can enter it to fork,
	// and a freeze is not cheap (the first frozen cgroup of the host turns a static key
	// on, which patches kernel text on every CPU; milliseconds in a VM).
	if !c.occupied() {
		_ = c.group.kill()
		return nil
	}
	if err := c.v1.Freeze(); err != nil {
		_ = c.group.kill()
		return fmt.Errorf("proc: freeze cgroup %s: %w", c.dir, err)
	}
	pids, err := c.members()
	for _, pid := range pids {
		_ = ignoreESRCH(syscall.Kill(pid, syscall.SIGKILL))
	}
	if terr := c.v1.Thaw(); err == nil {
		err = terr
	}
	return err
}

// release returns an empty cgroup to the pool for the next run, or removes it.
func (c *cgroupBox) release() {
	if c.resources {
		// Removing a memory cgroup costs about a millisecond of the kernel's time; the
		// run is over, so it need not wait for that.
		go c.remove()
		return
	}
	if (c.vacated || !c.occupied()) && boxPool.put(c) {
		return
	}
	c.remove()
}

// remove deletes the cgroup, retrying while killed members finish exiting.
func (c *cgroupBox) remove() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	// The tree is dead by now: plain rmdirs, children first, take it down without the
	// library's walk that reads every cgroup.procs of every controller first (most of
	// the CPU of a short run's teardown). Anything left (EBUSY) goes the slow way.
	if removeDirs(c.dirs) == nil {
		return
	}
	// A member that was exiting as we came (a run's pid 1 after its report) leaves in
	// a moment: wait for it a little before killing anything.
	for delay := 100 * time.Microsecond; delay <= 12800*time.Microsecond; delay *= 2 {
		time.Sleep(delay)
		if !c.occupied() && removeDirs(c.dirs) == nil {
			return
		}
	}
	// On a loaded machine killed members can take seconds to exit: keep trying for
	// about half a minute (in the background) rather than leave the cgroup behind,
	// at least every quarter second, so that it goes soon after they do.
	// Members still there are killed again, every 2 s once the retries are a quarter
	// second apart (on v1 each kill is a freeze).
	var err error
	delay := 200 * time.Microsecond
	for i, deadline := 0, time.Now().Add(30*time.Second); time.Now().Before(deadline); i, delay = i+1, min(2*delay, 250*time.Millisecond) {
		if c.v2 != nil {
			err = c.v2.Delete()
		} else {
			err = c.v1.Delete()
		}
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if delay < 250*time.Millisecond || i%8 == 0 {
			_ = c.kill()
		}
		time.Sleep(delay)
	}
}

// cgroupHost is what this process learned once about the cgroups it may create.
type cgroupHost struct {
	err      error // why cgroups cannot be used
	mode     cgroups.CGMode
	parent   string // v2: our own cgroup, relative to the mount; v1: our freezer cgroup
	ownTasks string // v1: the tasks file of our own freezer cgroup, where a thread returns

	// For Cmd.Resources, learned at the first use.
	resOnce sync.Once
	resErr  error
	// v1: our own cgroup in each controller a resource cgroup uses, and its tasks file
	resOwn      map[cgroup1.Name]string
	resOwnTasks []string
	memsw       bool // v1: swap is accounted, so memory+swap can be capped
}

// resourceControllers are the v1 controllers of a resource cgroup: the limits, CPU
// accounting, and the freezer for killing.
var resourceControllers = []cgroup1.Name{cgroup1.Memory, cgroup1.Pids, cgroup1.Cpuacct, cgroup1.Freezer}

var (
	hostOnce  sync.Once
	host      cgroupHost
	cgroupSeq atomic.Uint64
)

const (
	cgroupRoot   = "/sys/fs/cgroup"
	cgroupPrefix = "runbox-proc-"
)

func probeCgroups() *cgroupHost {
	hostOnce.Do(func() {
		host.mode = cgroups.Mode()
		switch host.mode {
		case cgroups.Unified:
			host.parent, host.err = ownCgroup("")
		case cgroups.Legacy, cgroups.Hybrid:
			host.parent, host.err = ownCgroup("freezer")
			host.ownTasks = filepath.Join(cgroupRoot, "freezer", host.parent, "tasks")
		default:
			host.err = errors.New("no cgroup file system mounted")
		}
		if host.err == nil {
			if host.mode == cgroups.Unified {
				removeStale(filepath.Join(cgroupRoot, host.parent))
			} else {
				removeStale(filepath.Join(cgroupRoot, "freezer", host.parent))
			}
			// Making one proves we may, so a Start does not pay for a failed attempt;
			// it waits in the pool for the first run.
			var b *cgroupBox
			if b, host.err = newCgroupBox(); b != nil {
				b.release()
			}
		}
	})
	return &host
}

func freezerOnly() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{cgroup1.NewFreezer(cgroupRoot)}, nil
}

// ownCgroup returns this process's cgroup in the given v1 controller, or in v2 when
// controller is empty.
func ownCgroup(controller string) (string, error) {
	legacy, unified, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	path := legacy[controller]
	if controller == "" {
		path = unified
	}
	if path == "" {
		return "", fmt.Errorf("no %q entry in /proc/self/cgroup", controller)
	}
	return path, nil
}

// boxPool keeps a few empty cgroups for reuse, so a run pays neither mkdir nor rmdir.
// Idle cgroups left behind when this program exits are removed by the next program
// that probes cgroups (see removeStale).
var boxPool = &cgroupPool{max: 16}

type cgroupPool struct {
	mu   sync.Mutex
	idle []*cgroupBox
	max  int
}

func (p *cgroupPool) get() (*cgroupBox, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		b := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return b, nil
	}
	p.mu.Unlock()
	return newCgroupBox()
}

func (p *cgroupPool) put(b *cgroupBox) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.max {
		return false
	}
	b.group, b.vacated = groupTree{}, false
	p.idle = append(p.idle, b)
	return true
}

// removeStale removes cgroups that runbox processes no longer alive left behind.
func removeStale(parentDir string) {
	entries, err := os.ReadDir(parentDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		// A member of a dead supervisor's box may still be on its way out (the other
		// threads of a process whose leader is already a zombie): give it a moment.
		// One still there after that is left, harmlessly, for the next start.
		dir := filepath.Join(parentDir, e.Name())
		for delay := time.Millisecond; unix.Rmdir(dir) == unix.EBUSY && delay <= 64*time.Millisecond; delay *= 2 {
			time.Sleep(delay)
		}
	}
}

func newCgroupBox() (*cgroupBox, error) {
	name := fmt.Sprintf("%s%d-%d", cgroupPrefix, os.Getpid(), cgroupSeq.Add(1))
	rel := filepath.Join(host.parent, name)
	if host.mode == cgroups.Unified {
		m, err := cgroup2.NewManager(cgroupRoot, rel, &cgroup2.Resources{})
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(cgroupRoot, rel)
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			_ = m.Delete()
			return nil, err
		}
		return withFiles(&cgroupBox{v2: m, dir: dir, fd: fd}), nil
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(rel), &specs.LinuxResources{}, cgroup1.WithHierarchy(freezerOnly))
	if err != nil {
		return nil, err
	}
	return withFiles(&cgroupBox{v1: cg, dir: filepath.Join(cgroupRoot, "freezer", rel), fd: -1}), nil
}

// removeDirs removes each cgroup directory and the cgroups below it, deepest first.
// A directory already gone is fine; the first other failure is returned.
func removeDirs(dirs []string) error {
	if len(dirs) == 0 {
		return errors.New("no directories known")
	}
	var first error
	for _, d := range dirs {
		if err := removeTree(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func withFiles(b *cgroupBox) *cgroupBox {
	if len(b.dirs) == 0 {
		b.dirs = []string{b.dir}
	}
	b.eventsFile = filepath.Join(b.dir, "cgroup.events")
	b.procsFile = filepath.Join(b.dir, "cgroup.procs")
	b.tasksFile = filepath.Join(b.dir, "tasks")
	return b
}

// prepareCgroup makes a cgroup for one run and arranges for the child to be born in it:
// on v2 by clone3 into the cgroup's fd, on v1 by forking from a thread that sits in it.
func prepareCgroup(want Containment, res *Resources, sys *syscall.SysProcAttr, req *spawnRequest) (*cgroupBox, error) {
	if res != nil {
		return prepareResourceCgroup(res, sys, req)
	}
	h := probeCgroups()
	if h.err != nil {
		if want == ContainCgroup {
			return nil, fmt.Errorf("proc: cgroup containment unavailable: %w", h.err)
		}
		return nil, nil
	}
	box, err := boxPool.get()
	if err != nil {
		if want == ContainCgroup {
			return nil, fmt.Errorf("proc: create cgroup: %w", err)
		}
		return nil, nil
	}
	if box.v2 != nil {
		sys.UseCgroupFD, sys.CgroupFD = true, box.fd
		return box, nil
	}
	req.join = func(tid int) error { return writeID(box.tasksFile, tid) }
	req.leave = func(tid int) error { return writeID(h.ownTasks, tid) }
	return box, nil
}

// writeID writes a task id into a cgroup file: the hot path of joining a v1 cgroup,
// one open and one write.
func writeID(path string, id int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	var buf [20]byte
	_, err = unix.Write(fd, strconv.AppendInt(buf[:0], int64(id), 10))
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}
