package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// prepareResourceCgroup makes a fresh cgroup with the limits of res and arranges for
// the child to be born in it, like prepareCgroup. A resource cgroup is never pooled:
// its OOM count and peak cannot be reset.
func prepareResourceCgroup(res *Resources, sys *syscall.SysProcAttr, req *spawnRequest) (*cgroupBox, error) {
	h := probeCgroups()
	if h.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroup, h.err)
	}
	box, err := newResourceBox(h, res)
	if err != nil {
		return nil, fmt.Errorf("%w: create: %w", ErrNoCgroup, err)
	}
	if box.v2 != nil {
		sys.UseCgroupFD, sys.CgroupFD = true, box.fd
		return box, nil
	}
	req.join = func(tid int) error {
		for _, f := range box.v1Tasks {
			if err := writeID(f, tid); err != nil {
				return err
			}
		}
		return nil
	}
	req.leave = func(tid int) error {
		var first error
		for _, f := range h.resOwnTasks {
			if err := writeID(f, tid); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	return box, nil
}

func newResourceBox(h *cgroupHost, res *Resources) (*cgroupBox, error) {
	h.resOnce.Do(func() { h.resErr = h.probeResources() })
	if h.resErr != nil {
		return nil, h.resErr
	}
	name := fmt.Sprintf("%s%d-r%d", cgroupPrefix, os.Getpid(), cgroupSeq.Add(1))
	if h.mode == cgroups.Unified {
		return newResourceBoxV2(h, name, res)
	}
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{}, Pids: &specs.LinuxPids{}}
	if res.Memory > 0 {
		r.Memory.Limit = &res.Memory
		if h.memsw {
			r.Memory.Swap = &res.Memory // memory+swap: no swap at all
		}
		zero := uint64(0)
		r.Memory.Swappiness = &zero
	}
	if res.Pids > 0 {
		r.Pids.Limit = &res.Pids
	}
	path := func(n cgroup1.Name) (string, error) { return filepath.Join(h.resOwn[n], name), nil }
	cg, err := cgroup1.New(path, r, cgroup1.WithHierarchy(resourceHierarchy))
	if err != nil {
		return nil, err
	}
	b := withFiles(&cgroupBox{v1: cg, dir: filepath.Join(cgroupRoot, "freezer", h.resOwn[cgroup1.Freezer], name), fd: -1, resources: true})
	b.dirs = nil
	for _, n := range resourceControllers {
		d := filepath.Join(cgroupRoot, string(n), h.resOwn[n], name)
		b.v1Tasks = append(b.v1Tasks, filepath.Join(d, "tasks"))
		b.dirs = append(b.dirs, d)
	}
	mem := filepath.Join(cgroupRoot, "memory", h.resOwn[cgroup1.Memory], name)
	b.peakFile = filepath.Join(mem, "memory.max_usage_in_bytes")
	b.oomFile = filepath.Join(mem, "memory.oom_control")
	b.cpuFile = filepath.Join(cgroupRoot, "cpuacct", h.resOwn[cgroup1.Cpuacct], name, "cpuacct.usage")
	return b, nil
}

func resourceHierarchy() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{cgroup1.NewMemory(cgroupRoot), cgroup1.NewPids(cgroupRoot),
		cgroup1.NewCpuacct(cgroupRoot), cgroup1.NewFreezer(cgroupRoot)}, nil
}

func newResourceBoxV2(h *cgroupHost, name string, res *Resources) (*cgroupBox, error) {
	r := &cgroup2.Resources{}
	if res.Memory > 0 {
		zero := int64(0)
		r.Memory = &cgroup2.Memory{Max: &res.Memory, Swap: &zero}
	}
	if res.Pids > 0 {
		r.Pids = &cgroup2.Pids{Max: res.Pids}
	}
	rel := filepath.Join(h.parent, name)
	m, err := cgroup2.NewManager(cgroupRoot, rel, r)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cgroupRoot, rel)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = m.Delete()
		return nil, err
	}
	b := withFiles(&cgroupBox{v2: m, dir: dir, fd: fd, resources: true})
	b.peakFile = filepath.Join(dir, "memory.peak")
	b.oomFile = filepath.Join(dir, "memory.events")
	b.cpuFile = filepath.Join(dir, "cpu.stat")
	return b, nil
}

// probeResources learns where resource cgroups go. On v1 they nest under our own
// cgroup of each controller. On v2 the controllers must be enabled in our own cgroup's
// subtree, which the kernel refuses while processes sit in it ("no internal
// processes"): this program then moves itself into a leaf, runbox-supervisor, once.
func (h *cgroupHost) probeResources() error {
	if h.mode == cgroups.Unified {
		own := filepath.Join(cgroupRoot, h.parent)
		want := []byte("+memory +pids +cpu")
		err := os.WriteFile(filepath.Join(own, "cgroup.subtree_control"), want, 0)
		if errors.Is(err, unix.EBUSY) {
			leaf := filepath.Join(own, "runbox-supervisor")
			if err = os.Mkdir(leaf, 0o755); err == nil || errors.Is(err, os.ErrExist) {
				if err = os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err == nil {
					err = os.WriteFile(filepath.Join(own, "cgroup.subtree_control"), want, 0)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("enable memory, pids and cpu controllers under %s (is the cgroup delegated to this user?): %w", own, err)
		}
		return nil
	}
	h.resOwn = make(map[cgroup1.Name]string)
	for _, n := range resourceControllers {
		own, err := ownCgroup(string(n))
		if err != nil {
			return fmt.Errorf("cgroup v1 controller %s: %w", n, err)
		}
		if _, err := os.Stat(filepath.Join(cgroupRoot, string(n), own, "tasks")); err != nil {
			return fmt.Errorf("cgroup v1 controller %s not mounted at %s: %w", n, filepath.Join(cgroupRoot, string(n)), err)
		}
		h.resOwn[n] = own
		h.resOwnTasks = append(h.resOwnTasks, filepath.Join(cgroupRoot, string(n), own, "tasks"))
		if n != cgroup1.Freezer { // probeCgroups cleaned the freezer
			removeStale(filepath.Join(cgroupRoot, string(n), own))
		}
	}
	_, err := os.Stat(filepath.Join(cgroupRoot, "memory", h.resOwn[cgroup1.Memory], "memory.memsw.limit_in_bytes"))
	h.memsw = err == nil
	return nil
}

// usage reads the tree's CPU time, peak memory and OOM kills: three small reads.
func (c *cgroupBox) usage() (Usage, error) {
	var u Usage
	var buf [512]byte
	n, err := readSmall(c.cpuFile, buf[:])
	if err != nil {
		return u, err
	}
	if c.v2 != nil {
		usec, _ := keyedValue(buf[:n], "usage_usec")
		u.CPU = time.Duration(usec) * time.Microsecond
	} else {
		ns, _ := strconv.ParseInt(string(bytes.TrimSpace(buf[:n])), 10, 64)
		u.CPU = time.Duration(ns)
	}
	if n, err = readSmall(c.peakFile, buf[:]); err == nil {
		u.MemoryPeak, _ = strconv.ParseInt(string(bytes.TrimSpace(buf[:n])), 10, 64)
	}
	if n, err = readSmall(c.oomFile, buf[:]); err != nil {
		return u, err
	}
	kills, _ := keyedValue(buf[:n], "oom_kill")
	u.OOMKills = int(kills)
	return u, nil
}

// keyedValue finds "key N" in a cgroup file of such lines.
func keyedValue(b []byte, key string) (int64, bool) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(" "))
		if ok && string(k) == key {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// Usage reads the tree's resource use so far, for a process started with
// Cmd.Resources. It fails once the process is done (see Result.Usage then).
func (p *Process) Usage() (Usage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	box, ok := p.tree.(*cgroupBox)
	if !ok || !box.resources {
		return Usage{}, errors.New("proc: Usage needs Cmd.Resources")
	}
	if p.released {
		return Usage{}, errors.New("proc: process finished; see Result.Usage")
	}
	return box.usage()
}

// RemoveStaleCgroups removes the cgroups that runbox processes no longer alive left
// behind (a supervisor killed with SIGKILL cannot clean up): in the freezer, and in
// every controller a Resources cgroup uses. proc does this once by itself, at its
// first cgroup; a long-lived supervisor calls it at start to be sure.
func RemoveStaleCgroups() error {
	h := probeCgroups()
	if h.err != nil {
		return h.err
	}
	for _, dir := range resourceParents(h) {
		removeStale(dir)
	}
	return nil
}

// resourceParents are the directories resource cgroups are made in: our own cgroup on
// v2, our own cgroup of each controller a resource cgroup uses on v1 (the freezer's
// included, where the plain containment's cgroups are made too).
func resourceParents(h *cgroupHost) []string {
	if h.mode == cgroups.Unified {
		return []string{filepath.Join(cgroupRoot, h.parent)}
	}
	var dirs []string
	for _, n := range resourceControllers {
		if own, err := ownCgroup(string(n)); err == nil {
			dirs = append(dirs, filepath.Join(cgroupRoot, string(n), own))
		}
	}
	return dirs
}

// ResourceCgroups lists the cgroups that Cmd.Resources made for this process's runs
// and that still exist, in every controller (a run's cgroup is removed in the
// background once it is over).
func ResourceCgroups() []string {
	h := probeCgroups()
	if h.err != nil {
		return nil
	}
	prefix := fmt.Sprintf("%s%d-r", cgroupPrefix, os.Getpid())
	var out []string
	for _, dir := range resourceParents(h) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out
}

// UpdateResources sets new limits on the cgroup of a process started with
// Cmd.Resources (zero fields are left as they are), and on v1 resets the peak memory
// to the current use, for a child started ahead of its work. Memory cannot be set
// below what the tree uses now.
func (p *Process) UpdateResources(r Resources) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	box, ok := p.tree.(*cgroupBox)
	if !ok || !box.resources || p.released {
		return errors.New("proc: UpdateResources needs a running process started with Cmd.Resources")
	}
	return box.update(r)
}

// update sets new limits on a resource cgroup (zero fields are left as they are) and
// on v1 resets the peak memory to the current use.
func (box *cgroupBox) update(r Resources) error {
	write := func(file string, v int64) error {
		return os.WriteFile(file, []byte(strconv.FormatInt(v, 10)), 0)
	}
	var errs []error
	if box.v2 != nil {
		if r.Memory > 0 {
			errs = append(errs, write(filepath.Join(box.dir, "memory.max"), r.Memory))
		}
		if r.Pids > 0 {
			errs = append(errs, write(filepath.Join(box.dir, "pids.max"), r.Pids))
		}
		return errors.Join(errs...)
	}
	mem := filepath.Dir(box.peakFile)
	if r.Memory > 0 {
		// memory+swap may never be below memory: order the writes by direction.
		cur, _ := os.ReadFile(filepath.Join(mem, "memory.limit_in_bytes"))
		curN, _ := strconv.ParseInt(strings.TrimSpace(string(cur)), 10, 64)
		files := []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
		if r.Memory > curN {
			files[0], files[1] = files[1], files[0]
		}
		for _, f := range files {
			if f == "memory.memsw.limit_in_bytes" && !host.memsw {
				continue
			}
			errs = append(errs, write(filepath.Join(mem, f), r.Memory))
		}
	}
	errs = append(errs, write(box.peakFile, 0))
	for _, f := range box.v1Tasks {
		if strings.Contains(f, "/pids/") && r.Pids > 0 {
			errs = append(errs, write(filepath.Join(filepath.Dir(f), "pids.max"), r.Pids))
		}
	}
	return errors.Join(errs...)
}

// CgroupName returns the name of the process's cgroup (the same in every v1
// controller), or "" when it has none.
func (p *Process) CgroupName() string {
	if box, ok := p.tree.(*cgroupBox); ok {
		return filepath.Base(box.dir)
	}
	return ""
}
