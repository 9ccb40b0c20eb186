package native

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/runboxhq/runbox/internal/procfs"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

// Leftovers lists what runs of this process left on the host: resource cgroups that
// still exist, and processes running as a box's uids, warm boxes aside. Empty between
// runs. A finished run's cgroup is removed in the background; Leftovers gives that up
// to eight seconds (on a loaded machine a killed process that used much memory can
// take seconds to exit: a clean-clone suite run saw a deep recursion's over five).
func (b *Backend) Leftovers(ctx context.Context) ([]string, error) {
	var out []string
	for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(5 * time.Millisecond) {
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
	for cg := range b.readyNames {
		idleCg[cg] = true
	}
	b.mu.Unlock()
	var out []string
	for _, dir := range proc.ResourceCgroups() {
		if !idleCg[filepath.Base(dir)] {
			out = append(out, "cgroup "+dir)
		}
	}
	// Only this process's boxes: another runbox (or test binary) on the host has its
	// own. A box's processes cannot leave its pid namespace, so they stay descendants.
	parent := make(map[int]int)
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if st, err := procfs.ReadStat(pid); err == nil {
			parent[pid] = st.PPid()
		}
	}
	// ours: a descendant of this process, and not of a box held between runs (the
	// warm template: its zygote and its ready runs).
	ours := func(pid int) bool {
		for range 64 {
			if idle[pid] {
				return false
			}
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
		if !ours(pid) {
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
		if uid >= uint64(b.cfg.HostUID) && uid < uint64(b.cfg.HostUID)+boxinit.UID+boxinit.Slots && !strings.HasPrefix(state, "Z") {
			out = append(out, fmt.Sprintf("process %d (uid %d, %s)", pid, uid, state))
		}
	}
	return out
}
