package docker_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/docker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newBackend returns a backend on the engine DOCKER_HOST names, whose default image
// scripts/docker-images.sh built. Without an engine the test is skipped, but under CI,
// where the test command starts one, it fails.
func newBackend(t testing.TB, cfg docker.Config) *docker.Backend {
	t.Helper()
	requireEngine(t)
	cfg.ClientOpts = append([]client.Opt{client.FromEnv}, cfg.ClientOpts...)
	b, err := docker.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func requireEngine(t testing.TB) {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = cli.Ping(ctx, client.PingOptions{})
	if err == nil {
		_, err = cli.ImageInspect(ctx, docker.DefaultImage)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Docker engine with %s under CI, where scripts/test.sh provides both: %v", docker.DefaultImage, err)
		}
		t.Skipf("no Docker engine with %s (scripts/docker-images.sh builds it): %v", docker.DefaultImage, err)
	}
}

// The container as the program sees it: who it is, what it holds, what it sees.
func TestContainerIdentity(t *testing.T) {
	b := newBackend(t, docker.Config{})
	res, err := b.Run(context.Background(), sandbox.Spec{Command: []string{"/bin/sh", "-c",
		"id -u; hostname; pwd; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; ls /proc | grep -c '^[0-9]'"}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(res.Stdout, "\n")
	if res.Status != sandbox.StatusOK || len(got) < 8 {
		t.Fatalf("status %s\nstdout:\n%s\nstderr:\n%s", res.Status, res.Stdout, res.Stderr)
	}
	if got[0] == "0" || got[1] != "runbox" || got[2] != "/work" {
		t.Errorf("uid %s, host name %s, work directory %s; want not root, runbox, /work", got[0], got[1], got[2])
	}
	for _, w := range []string{"CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(res.Stdout, w) {
			t.Errorf("no %q in\n%s", w, res.Stdout)
		}
	}
}

// ownerPrefix is the start of the owner label of containers this process makes.
func ownerPrefix() string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot)) + "/" + strconv.Itoa(os.Getpid()) + "/"
}
