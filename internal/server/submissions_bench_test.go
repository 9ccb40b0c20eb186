package server_test

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
	"github.com/runboxhq/runbox/internal/queue"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/host"
)

// benchBackend is the native backend; with RUNBOX_BENCH_BACKEND=host the host
// backend, with =noop one that runs nothing (the ceiling of the paths themselves).
func benchBackend(b *testing.B) sandbox.Backend {
	switch os.Getenv("RUNBOX_BENCH_BACKEND") {
	case "host":
		return host.New()
	case "noop":
		return noopBackend{}
	}
	be, err := backend(b)
	if err != nil {
		b.Skip(err)
	}
	return be
}

// benchClient is a client of a server with the embedded queue and workers in-process
// runs at once, as runbox serve has it by default.
func benchClient(b *testing.B, workers int) *client.Client {
	ts := queueServerOn(b, benchBackend(b), queue.Config{}, workers, nil)
	c, _ := client.New(ts.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}))
	return c
}

var benchRun = api.RunRequest{Command: []string{"/bin/true"}}

// BenchmarkQueueOverhead runs the same command two ways, alternating, one at a time:
// POST /v1/runs, and POST /v1/submissions followed by the watch of the submission to
// its result. It reports the p50 and p99 of each, and the difference of the p50s:
// what the queue adds to one run's latency (two KV writes, a publish, a fetch, an
// ack, and the watch).
func BenchmarkQueueOverhead(b *testing.B) {
	c := benchClient(b, 1)
	ctx := context.Background()
	direct := func() {
		if res, err := c.Run(ctx, benchRun); err != nil || res.Status != api.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
	}
	queued := func() {
		id, err := c.Submit(ctx, api.SubmitRequest{RunRequest: benchRun})
		if err != nil {
			b.Fatal(err)
		}
		if s, err := c.Wait(ctx, id); err != nil || s.Result.Status != api.StatusOK {
			b.Fatalf("%+v %v", s, err)
		}
	}
	var directT, queuedT []time.Duration
	i := 0
	for b.Loop() {
		first, second, firstT, secondT := direct, queued, &directT, &queuedT
		if i%2 == 1 {
			first, second, firstT, secondT = queued, direct, &queuedT, &directT
		}
		i++
		start := time.Now()
		first()
		mid := time.Now()
		second()
		*firstT = append(*firstT, mid.Sub(start))
		*secondT = append(*secondT, time.Since(mid))
	}
	d50, q50 := report(b, "direct", directT), report(b, "queued", queuedT)
	b.ReportMetric(q50-d50, "overhead-p50-ms")
}

// report reports the p50 and p99 of d as NAME-p50-ms and NAME-p99-ms, and returns
// the p50.
func report(b *testing.B, name string, d []time.Duration) (p50 float64) {
	p50, p99 := percentiles(d)
	b.ReportMetric(p50, name+"-p50-ms")
	b.ReportMetric(p99, name+"-p99-ms")
	return p50
}

func percentiles(d []time.Duration) (p50, p99 float64) {
	slices.Sort(d)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(d[len(d)/2]), ms(d[min(len(d)-1, len(d)*99/100)])
}

// BenchmarkQueueThroughput runs a burst of 400 runs two ways with the same
// concurrency (the CPUs): POST /v1/runs from as many clients, and 400 submissions in
// batches of 100 run by as many in-process workers, watched to their end. It
// reports the runs per second of each.
func BenchmarkQueueThroughput(b *testing.B) {
	const burst = 400
	n := max(2, runtime.NumCPU())
	c := benchClient(b, n)
	ctx := context.Background()
	var directRate, queuedRate []float64
	for b.Loop() {
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan struct{}, burst)
		for range burst {
			next <- struct{}{}
		}
		close(next)
		for range n {
			wg.Go(func() {
				for range next {
					if res, err := c.Run(ctx, benchRun); err != nil || res.Status != api.StatusOK {
						b.Errorf("%+v %v", res, err)
						return
					}
				}
			})
		}
		wg.Wait()
		directRate = append(directRate, burst/time.Since(start).Seconds())

		start = time.Now()
		var ids []string
		for i := 0; i < burst; i += 100 {
			reqs := slices.Repeat([]api.SubmitRequest{{RunRequest: benchRun}}, 100)
			got, err := c.SubmitBatch(ctx, reqs)
			if err != nil {
				b.Fatal(err)
			}
			for _, s := range got {
				ids = append(ids, s.ID)
			}
		}
		for _, id := range ids {
			if s, err := c.Wait(ctx, id); err != nil || s.Result.Status != api.StatusOK {
				b.Fatalf("%+v %v", s, err)
			}
		}
		queuedRate = append(queuedRate, burst/time.Since(start).Seconds())
	}
	b.ReportMetric(median(directRate), "direct-runs/s")
	b.ReportMetric(median(queuedRate), "queued-runs/s")
	b.ReportMetric(float64(n), "concurrency")
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// noopBackend answers ok at once without running anything.
type noopBackend struct{}

func (noopBackend) Name() string { return "noop" }
func (noopBackend) Close() error { return nil }
func (noopBackend) Run(_ context.Context, spec sandbox.Spec) (*sandbox.Result, error) {
	zero := 0
	return &sandbox.Result{RunID: spec.RunID, Backend: "noop", Status: sandbox.StatusOK, ExitCode: &zero}, nil
}
