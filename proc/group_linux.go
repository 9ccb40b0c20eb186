package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Group is a cgroup with the limits of Resources that no Cmd starts a process in:
// processes started elsewhere join it themselves, through the files JoinFiles opens
// (a fork server's child, which cannot be born in a cgroup of its own). Its members are
// signaled, killed and measured as a whole. Safe for concurrent use.
type Group struct {
	mu   sync.Mutex
	box  *cgroupBox
	done bool
}

// NewGroup makes a cgroup with the limits of res, empty; Close removes it. It is one of
// ResourceCgroups until then.
func NewGroup(res Resources) (*Group, error) {
	h := probeCgroups()
	if h.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroup, h.err)
	}
	box, err := newResourceBox(h, &res)
	if err != nil {
		return nil, fmt.Errorf("%w: create: %w", ErrNoCgroup, err)
	}
	return &Group{box: box}, nil
}

// Name returns the cgroup's name (the same in every v1 controller).
func (g *Group) Name() string { return filepath.Base(g.box.dir) }

// JoinFiles opens the group's cgroup.procs files for writing: one per v1 controller,
// or the one of v2. A process that writes "0" to each of them moves itself into the
// group; the kernel checks the rights of whoever opened them (this process), so they
// can be handed to a process that could not open them itself. The caller closes them.
func (g *Group) JoinFiles() ([]*os.File, error) {
	var files []*os.File
	for _, d := range g.box.dirs {
		fd, err := unix.Open(filepath.Join(d, "cgroup.procs"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("proc: open %s/cgroup.procs: %w", d, err)
		}
		files = append(files, os.NewFile(uintptr(fd), filepath.Join(d, "cgroup.procs")))
	}
	return files, nil
}

// Kill sends SIGKILL to every member.
func (g *Group) Kill() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return nil
	}
	return g.box.kill()
}

// Occupied reports whether any process is left in the group.
func (g *Group) Occupied() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.done && g.box.occupied()
}

// Usage reads the members' CPU time, the group's peak memory and its OOM kills, since
// the group was made.
func (g *Group) Usage() (Usage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return Usage{}, errors.New("proc: group closed")
	}
	return g.box.usage()
}

// Update sets new limits (zero fields are left as they are) and, on cgroup v1, resets
// the peak memory to the current use: for a group made ahead of its run.
func (g *Group) Update(res Resources) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return errors.New("proc: group closed")
	}
	return g.box.update(res)
}

// Close removes the group in the background (removing a memory cgroup costs the
// kernel about a millisecond). A member still in it is given a few milliseconds to
// leave by itself (a process that is exiting stays a member until late in its exit,
// after its files are closed and its namespaces dropped), then killed: call Kill first
// for members that must die at once.
func (g *Group) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return
	}
	g.done = true
	go g.box.remove()
}
