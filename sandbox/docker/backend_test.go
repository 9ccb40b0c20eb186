package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/docker"
)

func engineClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Cold containers (no warm pool) give the same verdicts: each status the engine has a
// part in, and the output caps.
func TestColdRuns(t *testing.T) {
	b := newBackend(t, docker.Config{})
	for _, tc := range []struct {
		name   string
		spec   sandbox.Spec
		status sandbox.Status
		limit  string
	}{
		{"ok", sandbox.Spec{Language: "python", Code: "print(6*7)"}, sandbox.StatusOK, ""},
		{"syntax", sandbox.Spec{Language: "python", Code: "print(("}, sandbox.StatusSyntaxError, ""},
		{"wall", sandbox.Spec{Command: []string{"sleep", "60"}, Limits: sandbox.Limits{WallTime: time.Second}}, sandbox.StatusTimeout, "wall"},
		{"oom", sandbox.Spec{Language: "python", Code: "b = bytearray(512 << 20)", Limits: sandbox.Limits{Memory: 64 << 20}}, sandbox.StatusOOM, "memory"},
		{"output", sandbox.Spec{Command: []string{"yes"}, Limits: sandbox.Limits{Stdout: 1000}}, sandbox.StatusOutputLimit, "stdout"},
		{"tmpfs", sandbox.Spec{Command: []string{"sh", "-c", "df -k /work | tail -1"}, Limits: sandbox.Limits{TmpSize: 2 << 20}}, sandbox.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := b.Run(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status || res.Limit != tc.limit {
				t.Fatalf("status %s limit %q, want %s %q\n%+v", res.Status, res.Limit, tc.status, tc.limit, res)
			}
			switch tc.name {
			case "ok":
				if res.Stdout != "42\n" || res.PeakMemory == 0 || res.CPUTime == 0 {
					t.Errorf("stdout %q, peak memory %d, cpu %v", res.Stdout, res.PeakMemory, res.CPUTime)
				}
			case "output":
				if len(res.Stdout) != 1000 || !res.StdoutTruncated {
					t.Errorf("kept %d bytes, truncated %v; want 1000, true", len(res.Stdout), res.StdoutTruncated)
				}
			case "tmpfs":
				if f := strings.Fields(res.Stdout); len(f) < 2 || f[1] != "2048" {
					t.Errorf("df of /work: %q, want a 2048 KiB tmpfs", res.Stdout)
				}
			}
		})
	}
	left, err := b.Leftovers(context.Background())
	if err != nil || len(left) > 0 {
		t.Errorf("left behind: %v %v", left, err)
	}
}

// An image that is not there, or lacks the interpreter, and an engine that does not
// answer are sandbox_error, with what to do.
func TestSandboxErrors(t *testing.T) {
	requireEngine(t)
	ctx := context.Background()
	check := func(t *testing.T, b *docker.Backend, spec sandbox.Spec, want ...string) {
		t.Helper()
		res, err := b.Run(ctx, spec)
		if !errors.Is(err, sandbox.ErrSandbox) || res == nil || res.Status != sandbox.StatusSandboxError {
			t.Fatalf("result %+v, error %v; want sandbox_error", res, err)
		}
		for _, w := range want {
			if !strings.Contains(res.Error, w) {
				t.Errorf("error %q does not say %q", res.Error, w)
			}
		}
	}
	t.Run("missing_image", func(t *testing.T) {
		b := newBackend(t, docker.Config{Images: map[string]string{"python": "runbox-no-such-image:1"}})
		check(t, b, sandbox.Spec{Language: "python", Code: "print(1)"}, "runbox-no-such-image:1", "scripts/docker-images.sh", "--pull", "--image")
	})
	t.Run("unreachable_engine", func(t *testing.T) {
		b := newBackend(t, docker.Config{ClientOpts: []client.Opt{client.WithHost("unix:///nonexistent/docker.sock")}})
		check(t, b, sandbox.Spec{Command: []string{"true"}}, "unreachable", "start it", "DOCKER_HOST")
	})
	t.Run("no_interpreter", func(t *testing.T) {
		image := noPythonImage(t)
		b := newBackend(t, docker.Config{Images: map[string]string{"python": image}})
		check(t, b, sandbox.Spec{Language: "python", Code: "print(1)"}, "python3", image, "--image python=IMAGE")
	})
}

// noPythonImage builds, from the default image and offline, one without python3.
func noPythonImage(t *testing.T) string {
	const image = "runbox-test-nopython:1"
	cli := engineClient(t)
	var ctx bytes.Buffer
	tw := tar.NewWriter(&ctx)
	df := "FROM " + docker.DefaultImage + "\nRUN rm -f /usr/bin/python3*\n"
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))})
	tw.Write([]byte(df))
	tw.Close()
	res, err := cli.ImageBuild(context.Background(), &ctx, client.ImageBuildOptions{Tags: []string{image}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if _, err := cli.ImageInspect(context.Background(), image); err != nil {
		t.Fatalf("build %s: %v\n%s", image, err, out)
	}
	t.Cleanup(func() { cli.ImageRemove(context.Background(), image, client.ImageRemoveOptions{Force: true}) })
	return image
}

// The janitor removes a container runbox made whose deadline has passed, even when
// its owner is on another machine, when a backend starts.
func TestJanitorRemovesPastDeadline(t *testing.T) {
	requireEngine(t)
	cli := engineClient(t)
	ctx := context.Background()
	past := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	make := func(deadline string) string {
		c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{
			Image: docker.DefaultImage, Cmd: []string{"true"},
			Labels: map[string]string{"io.runbox.owner": "another-machine/1/1", "io.runbox.deadline": deadline, "io.runbox.run": "test"}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}) })
		return c.ID
	}
	expired, alive := make(past), make(future)
	newBackend(t, docker.Config{})
	if _, err := cli.ContainerInspect(ctx, expired, client.ContainerInspectOptions{}); err == nil {
		t.Error("the container past its deadline is still there")
	}
	if _, err := cli.ContainerInspect(ctx, alive, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("the container within its deadline is gone: %v", err)
	}
}

// Close waits for runs, removes the warm containers, and later runs fail.
func TestCloseRemovesWarm(t *testing.T) {
	b := newBackend(t, docker.Config{Warm: 2})
	if res, err := b.Run(context.Background(), sandbox.Spec{Command: []string{"true"}}); err != nil || res.Status != sandbox.StatusOK {
		t.Fatalf("%+v %v", res, err)
	}
	cli := engineClient(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", "io.runbox.run=warm")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		if strings.HasPrefix(c.Labels["io.runbox.owner"], ownerPrefix()) {
			t.Errorf("warm container %.12s left after Close", c.ID)
		}
	}
	if _, err := b.Run(context.Background(), sandbox.Spec{Command: []string{"true"}}); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

// A context that ends before the program starts (here: before Run) still gives a
// timeout result, and nothing is left.
func TestCancelledBeforeStart(t *testing.T) {
	b := newBackend(t, docker.Config{Warm: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := b.Run(ctx, sandbox.Spec{Command: []string{"sleep", "30"}})
	if err != nil || res.Status != sandbox.StatusTimeout || res.Limit != "wall" {
		t.Fatalf("%+v %v", res, err)
	}
	if left, err := b.Leftovers(context.Background()); err != nil || len(left) > 0 {
		t.Errorf("left: %v %v", left, err)
	}
}
