package proc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

func (g groupTree) signal(sig syscall.Signal) error { return ignoreESRCH(syscall.Kill(-g.pgid, sig)) }
func (g groupTree) kill() error                     { return g.signal(syscall.SIGKILL) }
func (g groupTree) release()                        {}
func (g groupTree) containment() Containment        { return ContainProcessGroup }

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
	// the killed can die.
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

// release removes the cgroup, retrying while killed members finish exiting.
func (c *cgroupBox) release() {
	var err error
	for delay := 200 * time.Microsecond; delay < 2*time.Second; delay *= 2 {
		if c.v2 != nil {
			err = c.v2.Delete()
		} else {
			err = c.v1.Delete()
		}
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		_ = c.kill()
		time.Sleep(delay)
	}
}

// cgroupHost is what this process learned once about the cgroups it may create.
type cgroupHost struct {
	err    error // why cgroups cannot be used
	mode   cgroups.CGMode
	parent string // v2: our own cgroup, relative to the mount; v1: our freezer cgroup
	own    cgroup1.Cgroup
}

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
			if host.err == nil {
				host.own, host.err = cgroup1.Load(cgroup1.StaticPath(host.parent), cgroup1.WithHierarchy(freezerOnly))
			}
		default:
			host.err = errors.New("no cgroup file system mounted")
		}
		if host.err == nil {
			// Creating and removing one proves we may; otherwise every Start would pay
			// for the failed attempt.
			var b *cgroupBox
			b, host.err = newCgroupBox()
			if b != nil {
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
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2], nil
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller && controller != "" {
				return parts[2], nil
			}
		}
	}
	return "", fmt.Errorf("no %q entry in /proc/self/cgroup", controller)
}

func newCgroupBox() (*cgroupBox, error) {
	name := fmt.Sprintf("%s%d-%d", cgroupPrefix, os.Getpid(), cgroupSeq.Add(1))
	rel := filepath.Join(host.parent, name)
	if host.mode == cgroups.Unified {
		m, err := cgroup2.NewManager(cgroupRoot, rel, &cgroup2.Resources{})
		if err != nil {
			return nil, err
		}
		return &cgroupBox{v2: m, dir: filepath.Join(cgroupRoot, rel)}, nil
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(rel), &specs.LinuxResources{}, cgroup1.WithHierarchy(freezerOnly))
	if err != nil {
		return nil, err
	}
	return &cgroupBox{v1: cg, dir: filepath.Join(cgroupRoot, "freezer", rel)}, nil
}

// prepareCgroup makes a cgroup for one run and arranges for the child to be born in it:
// on v2 by clone3 into the cgroup's fd, on v1 by forking from a thread that sits in it.
func prepareCgroup(want Containment, sys *syscall.SysProcAttr, req *spawnRequest) (*cgroupBox, error) {
	h := probeCgroups()
	if h.err != nil {
		if want == ContainCgroup {
			return nil, fmt.Errorf("proc: cgroup containment unavailable: %w", h.err)
		}
		return nil, nil
	}
	box, err := newCgroupBox()
	if err != nil {
		if want == ContainCgroup {
			return nil, fmt.Errorf("proc: create cgroup: %w", err)
		}
		return nil, nil
	}
	if box.v2 != nil {
		fd, err := unix.Open(box.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			box.release()
			return nil, fmt.Errorf("proc: open cgroup: %w", err)
		}
		sys.UseCgroupFD, sys.CgroupFD = true, fd
		req.closeAfter = append(req.closeAfter, fd)
		return box, nil
	}
	req.join = func(tid int) error { return box.v1.AddTask(cgroup1.Process{Pid: tid}) }
	req.leave = func(tid int) error { return h.own.AddTask(cgroup1.Process{Pid: tid}) }
	return box, nil
}
