package docker_test

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/docker"
)

// The benchmarks bench/docker.sh interleaves and compares: the docker CLI's own
// `docker run --rm --network none IMAGE true`, and the backend's runs of `true` (and
// print(1)) in a cold container and in a warm one. Each reports its p50 in ms.

// BenchmarkDockerRunCLI is the peer: `docker run --rm --network none IMAGE true` by the
// docker CLI on PATH, to the same engine.
func BenchmarkDockerRunCLI(b *testing.B) {
	requireEngine(b)
	cliPath, err := exec.LookPath("docker")
	if err != nil {
		b.Skip("no docker CLI on PATH")
	}
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		out, err := exec.Command(cliPath, "run", "--rm", "--network", "none", docker.DefaultImage, "true").CombinedOutput()
		if err != nil {
			b.Fatalf("docker run: %v\n%s", err, out)
		}
		times = append(times, time.Since(start))
	}
	reportP50(b, times)
}

// BenchmarkTrueCold is `true` in a new container per run, every default limit.
func BenchmarkTrueCold(b *testing.B) {
	benchRuns(b, newBackend(b, docker.Config{}), sandbox.Spec{Command: []string{"true"}}, false)
}

// BenchmarkTrueWarm is `true` in a warm container. Between runs the timer stops until
// the pool is full again: this is the latency of a run when a warm container waits
// (an agent's pace), not the engine's sustained rate of making containers.
func BenchmarkTrueWarm(b *testing.B) {
	benchRuns(b, newBackend(b, docker.Config{Warm: 1}), sandbox.Spec{Command: []string{"true"}}, true)
}

// BenchmarkPythonPrintWarm is print(1) in a warm container.
func BenchmarkPythonPrintWarm(b *testing.B) {
	benchRuns(b, newBackend(b, docker.Config{Warm: 1}), sandbox.Spec{Language: "python", Code: "print(1)"}, true)
}

func benchRuns(b *testing.B, be *docker.Backend, spec sandbox.Spec, warm bool) {
	ctx := context.Background()
	var times []time.Duration
	for b.Loop() {
		if warm {
			b.StopTimer()
			if err := be.Prewarm(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		start := time.Now()
		res, err := be.Run(ctx, spec)
		times = append(times, time.Since(start))
		if err != nil || res.Status != sandbox.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
	}
	reportP50(b, times)
}

func reportP50(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	if len(times) > 0 {
		b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	}
}
