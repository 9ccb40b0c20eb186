package cli_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/sandbox/docker"
)

// dockerEngine returns a client of the engine the Docker backend uses, skipping the
// test without one (but failing under CI, where scripts/test.sh starts one).
func dockerEngine(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err = cli.Ping(ctx, client.PingOptions{}); err == nil {
		_, err = cli.ImageInspect(ctx, docker.DefaultImage)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Docker engine with %s under CI: %v", docker.DefaultImage, err)
		}
		t.Skipf("no Docker engine with %s (scripts/docker-images.sh builds it): %v", docker.DefaultImage, err)
	}
	return cli
}

// containersOf lists the containers that the runbox process pid made.
func containersOf(t *testing.T, cli *client.Client, pid int) []string {
	t.Helper()
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	prefix := strings.TrimSpace(string(boot)) + "/" + strconv.Itoa(pid) + "/"
	list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", "io.runbox.owner")})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list.Items {
		if strings.HasPrefix(c.Labels["io.runbox.owner"], prefix) {
			ids = append(ids, c.ID[:12]+" "+string(c.State))
		}
	}
	return ids
}

// A SIGKILLed `runbox run --backend docker` cannot remove its container (a killed
// docker client cannot either); the next runbox to open the backend does.
func TestDockerKilledRunLeavesNothing(t *testing.T) {
	cli := dockerEngine(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "sleep.sh")
	if err := os.WriteFile(script, []byte("sleep 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(os.Args[0], "__runbox", "run", "--backend", "docker", "--timeout", "30m",
		"--logs", filepath.Join(dir, "logs"), script)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ids := containersOf(t, cli, run.Process.Pid); len(ids) > 0 && strings.Contains(strings.Join(ids, " "), "running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no running container of the run after 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	run.Process.Kill()
	run.Wait()
	time.Sleep(500 * time.Millisecond)
	left := containersOf(t, cli, run.Process.Pid)
	if len(left) == 0 {
		t.Fatal("the killed run's containers are gone before any runbox started again: the test proves nothing")
	}

	next := exec.Command(os.Args[0], "__runbox", "doctor", "docker")
	out, err := next.CombinedOutput()
	if err != nil {
		t.Fatalf("runbox doctor docker: %v\n%s", err, out)
	}
	if after := containersOf(t, cli, run.Process.Pid); len(after) > 0 {
		t.Errorf("after the next runbox start, the killed run's containers %v remain (before: %v)", after, left)
	}
}
