package pool_test

import (
	"context"
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
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
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
