package proc_test

import (
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
	// The shell moves itself in (fds 3…), burns some CPU, and waits to be killed.
	script := ""
	for i := range joins {
		script += "echo 0 >&" + string(rune('3'+i)) + "; "
	}
	cmd := exec.Command("/bin/sh", "-c", script+"i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo in; exec sleep 60")
	cmd.ExtraFiles = joins
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range joins {
		f.Close()
	}
	buf := make([]byte, 3)
	if _, err := out.Read(buf); err != nil || string(buf) != "in\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
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
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(proc.ResourceCgroups(), func(d string) bool { return strings.HasSuffix(d, "/"+g.Name()) }) {
			return
		}
	}
	t.Errorf("group %s still exists after Close", g.Name())
}
