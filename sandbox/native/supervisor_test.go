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

// supervisedBy lists the live processes in cgroups made by the runbox process pid:
// the boxes of that supervisor, wherever they were reparented.
func supervisedBy(pid int) []string {
	mark := fmt.Sprintf("runbox-proc-%d-", pid)
	var out []string
	stats, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(data), mark) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "stat"))
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			continue // a zombie: PID 1 of this VM does not reap
		}
		out = append(out, filepath.Dir(f))
	}
	return out
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
	argv, env := testenv.Command(t, "box-sleep")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for len(supervisedBy(pid)) < 2 { // the init and sleep
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
	for deadline = time.Now().Add(5 * time.Second); len(supervisedBy(pid)) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("box processes survived their supervisor: %v", supervisedBy(pid))
		}
	}
	if len(staleCgroups(pid)) == 0 {
		t.Fatal("the killed supervisor left no cgroup: nothing to clean up, so this test proves nothing")
	}
	if _, err := native.New(context.Background(), native.Config{}); err != nil {
		t.Fatal(err)
	}
	if left := staleCgroups(pid); len(left) > 0 {
		t.Fatalf("cgroups of the killed supervisor remain after the next start: %v", left)
	}
}
