package native_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

func init() {
	// box-sleep: run a box that sleeps, as a supervisor about to be SIGKILLed.
	testenv.Register("box-sleep", func([]string) int {
		b, err := native.New(context.Background(), native.Config{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		res, err := b.Run(context.Background(), sandbox.Spec{Command: []string{"/bin/sleep", "100"}, Limits: sandbox.Limits{WallTime: time.Minute}})
		fmt.Println(res, err)
		return 0
	})
}

// boxProcesses lists the processes running as a box's uids.
func boxProcesses(t *testing.T, b *native.Backend) []string {
	t.Helper()
	left, err := b.Leftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var procs []string
	for _, l := range left {
		if strings.HasPrefix(l, "process ") {
			procs = append(procs, l)
		}
	}
	return procs
}

// staleCgroups lists the cgroups a process left, in every v1 controller a box uses.
func staleCgroups(pid int) []string {
	var out []string
	for _, ctrl := range []string{"memory", "pids", "cpuacct", "freezer"} {
		matches, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/%s/*runbox-proc-%d-*", ctrl, pid))
		deeper, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/%s/*/*/runbox-proc-%d-*", ctrl, pid))
		out = append(out, append(matches, deeper...)...)
	}
	return out
}

// HOSTILE I2: the supervisor is SIGKILLed mid-run; no process of the box survives,
// and the next start removes the cgroups it left.
func TestSupervisorKilled(t *testing.T) {
	b := newBackend(t)
	if procs := boxProcesses(t, b); len(procs) > 0 {
		t.Skipf("box processes of another run exist: %v", procs)
	}
	argv, env := testenv.Command(t, "box-sleep")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(boxProcesses(t, b)) < 2 { // the init and sleep
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the box never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for deadline = time.Now().Add(5 * time.Second); len(boxProcesses(t, b)) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("box processes survived their supervisor: %v", boxProcesses(t, b))
		}
	}
	if len(staleCgroups(cmd.Process.Pid)) == 0 {
		t.Fatal("the killed supervisor left no cgroup: nothing to clean up, so this test proves nothing")
	}
	if _, err := native.New(context.Background(), native.Config{}); err != nil {
		t.Fatal(err)
	}
	if left := staleCgroups(cmd.Process.Pid); len(left) > 0 {
		t.Fatalf("cgroups of the killed supervisor remain after the next start: %v", left)
	}
}
