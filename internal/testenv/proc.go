package testenv

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/procfs"
)

const (
	// pollInterval is how often WaitGone and the leak check look at /proc.
	pollInterval = 10 * time.Millisecond
	// killWait bounds how long WaitGone waits for the survivors it killed.
	killWait = 2 * time.Second
)

// Alive reports whether process pid exists and has not exited. A zombie (state Z, or X)
// counts as gone: here PID 1 does not reap orphans, so killed grandchildren can stay
// zombies for good.
func Alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

// Descendants returns the live descendants of pid, sorted, found by following the ppid
// links in /proc. Orphans have been re-parented and are no longer descendants.
func Descendants(pid int) []int {
	children := make(map[int][]int)
	live := make(map[int]bool)
	for _, p := range pids() {
		st, err := readStat(p)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], p)
		live[p] = st.state != 'Z' && st.state != 'X'
	}
	var out []int
	// seen guards against a cycle made of pids reused while /proc was being read.
	seen := map[int]bool{pid: true}
	for queue := children[pid]; len(queue) > 0; {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		queue = append(queue, children[p]...)
		if live[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// WaitGone waits up to within for every process in pids to be gone (see [Alive]). If some
// survive, it kills them with SIGKILL and fails the test naming them.
func WaitGone(t testing.TB, pids []int, within time.Duration) {
	t.Helper()
	survivors := waitGone(pids, within)
	if len(survivors) == 0 {
		return
	}
	var names []string
	for _, pid := range survivors {
		names = append(names, describe(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	waitGone(survivors, killWait)
	t.Errorf("testenv: %d process(es) still alive after %v, killed:\n\t%s",
		len(survivors), within, strings.Join(names, "\n\t"))
}

// waitGone polls until none of pids is alive or within has passed, and returns the
// survivors.
func waitGone(pids []int, within time.Duration) []int {
	stop := time.Now().Add(within)
	for {
		var alive []int
		for _, pid := range pids {
			if Alive(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 || time.Now().After(stop) {
			return alive
		}
		time.Sleep(pollInterval)
	}
}

// describe names a process for a failure message: pid, helper, test and command line.
func describe(pid int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", pid)
	env := environ(pid)
	for _, k := range []string{EnvHelper, EnvTest} {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				fmt.Fprintf(&b, " %s=%q", k, v)
			}
		}
	}
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		fmt.Fprintf(&b, ": %s", bytes.ReplaceAll(bytes.TrimRight(cmd, "\x00"), []byte{0}, []byte{' '}))
	}
	return b.String()
}

// stat holds the fields of /proc/PID/stat that this package uses.
type stat struct {
	comm  string
	state byte
	ppid  int
}

func readStat(pid int) (stat, error) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return stat{}, err
	}
	return stat{comm: st.Comm, state: st.Fields[0][0], ppid: st.PPid()}, nil
}

// environ returns the initial environment of pid; nil if it is gone or unreadable.
func environ(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// pids lists the processes (thread group leaders) in /proc.
func pids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
