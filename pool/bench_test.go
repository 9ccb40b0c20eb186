package pool_test

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/pool"
	"github.com/runboxhq/runbox/proc"
)

func benchPool(b *testing.B, workers int) *pool.Pool {
	argv, env := testenv.Command(b, "pool-worker")
	p, err := pool.New(context.Background(), pool.Config{Cmd: &proc.Cmd{Args: argv, Env: env}, Workers: workers})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// BenchmarkRoundTrip is one task at a time through one Go echo worker: latency.
func BenchmarkRoundTrip(b *testing.B) {
	p := benchPool(b, 1)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, err := pool.Call[answer](ctx, p, job{"echo", 1}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkRoundTripPipe is the floor under BenchmarkRoundTrip: the same worker started
// with os/exec, one request line written and one answer line read by this goroutine,
// no pool. What BenchmarkRoundTrip adds to it is the pool's own cost.
func BenchmarkRoundTripPipe(b *testing.B) {
	call := pipeWorker(b)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		call()
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkThroughputPipe is the floor under BenchmarkThroughput: two such workers,
// each driven by its own goroutine, no pool.
func BenchmarkThroughputPipe(b *testing.B) {
	calls := []func(){pipeWorker(b), pipeWorker(b)}
	per := b.N / len(calls)
	start := time.Now()
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			for range per {
				call()
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(per*len(calls))/time.Since(start).Seconds(), "tasks/s")
}

// pipeWorker starts the Go echo worker with os/exec and returns a function that writes
// one request to it and reads its answer.
func pipeWorker(b *testing.B) func() {
	argv, env := testenv.Command(b, "pool-worker")
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = env
	in, err := c.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); c.Wait() })
	r := bufio.NewReader(out)
	if _, err := r.ReadBytes('\n'); err != nil { // the handshake
		b.Fatal(err)
	}
	req := []byte(`{"id":1,"method":"call","params":{"op":"echo","n":1}}` + "\n")
	return func() {
		if _, err := in.Write(req); err != nil {
			b.Error(err)
			return
		}
		l, err := r.ReadBytes('\n')
		if err != nil || !bytes.Contains(l, []byte(`"result":`)) {
			b.Errorf("answer %q, %v", l, err)
		}
	}
}

// BenchmarkThroughput keeps two workers busy from 8 submitters: tasks per second.
func BenchmarkThroughput(b *testing.B) {
	p := benchPool(b, 2)
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	n := b.N
	per := (n + 7) / 8
	for range 8 {
		wg.Go(func() {
			for range per {
				if _, err := pool.Call[answer](ctx, p, job{"echo", 1}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(per*8)/time.Since(start).Seconds(), "tasks/s")
}
