package proc_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/proc"
)

// A process started outside proc joins a Group through the files JoinFiles opened, and
// is then measured, limited and killed with the group.
func TestGroupJoinUsageKill(t *testing.T) {
	t.Parallel()
	g, err := proc.NewGroup(proc.Resources{Memory: 64 << 20, Pids: 16})
	if err != nil {
		t.Skipf("no cgroups: %v", err)
	}
	defer g.Close()
	if !slices.ContainsFunc(proc.ResourceCgroups(), func(d string) bool { return strings.HasSuffix(d, "/"+g.Name()) }) {
		t.Errorf("group %s is not among ResourceCgroups %v", g.Name(), proc.ResourceCgroups())
	}
	joins, err := g.JoinFiles()
	if err != nil {
		t.Fatal(err)
	}
	if g.Occupied() {
		t.Fatal("a new group is occupied")
	}
	// The shell moves itself in, burns some CPU, and waits to be killed.
	cmd := startJoined(t, joins, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
	if !g.Occupied() {
		t.Error("the group is empty after the shell joined it")
	}
	u, err := g.Usage()
	if err != nil || u.CPU <= 0 || u.MemoryPeak <= 0 {
		t.Errorf("usage %+v, %v: want the shell's CPU time and memory", u, err)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	if ee, ok := werr.(*exec.ExitError); !ok || !ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
		t.Errorf("the shell ended with %v, want killed", werr)
	}
	deadline := time.Now().Add(time.Second)
	for g.Occupied() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g.Occupied() {
		t.Error("the group is occupied after Kill")
	}
	g.Close()
	waitRemoved(t, g)
}

// Close kills a member that does not leave by itself, a few milliseconds on, and
// removes the group.
func TestGroupCloseKillsWhatIsLeft(t *testing.T) {
	t.Parallel()
	g, err := proc.NewGroup(proc.Resources{Pids: 16})
	if err != nil {
		t.Skipf("no cgroups: %v", err)
	}
	defer g.Close()
	joins, err := g.JoinFiles()
	if err != nil {
		t.Fatal(err)
	}
	cmd := startJoined(t, joins, ":")
	g.Close()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case werr := <-waited:
		if ee, ok := werr.(*exec.ExitError); !ok || !ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			t.Errorf("the member ended with %v, want killed", werr)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the member still runs 10 s after Close")
	}
	waitRemoved(t, g)
}

// startJoined starts a shell that moves itself into a group through joins (its fds 3…),
// runs work, says so, and sleeps; it returns once the shell has said so.
func startJoined(t *testing.T, joins []*os.File, work string) *exec.Cmd {
	t.Helper()
	script := ""
	for i := range joins {
		script += "echo 0 >&" + string(rune('3'+i)) + "; "
	}
	cmd := exec.Command("/bin/sh", "-c", script+work+"; echo in; exec sleep 60")
	cmd.ExtraFiles = joins
	out, _ := cmd.StdoutPipe()
	err := cmd.Start()
	for _, f := range joins {
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	buf := make([]byte, 3)
	if _, err := out.Read(buf); err != nil || string(buf) != "in\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
	return cmd
}

// waitRemoved fails t unless g's cgroup is gone within 5 s of its Close.
func waitRemoved(t *testing.T, g *proc.Group) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(proc.ResourceCgroups(), func(d string) bool { return strings.HasSuffix(d, "/"+g.Name()) }) {
			return
		}
	}
	t.Errorf("group %s still exists after Close", g.Name())
}
