package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
)

// timed is a backend that records how long each Run of the backend inside took.
type timed struct {
	sandbox.Backend
	mu   sync.Mutex
	last time.Duration
}

func (t *timed) Run(ctx context.Context, spec sandbox.Spec) (*sandbox.Result, error) {
	start := time.Now()
	res, err := t.Backend.Run(ctx, spec)
	t.mu.Lock()
	t.last = time.Since(start)
	t.mu.Unlock()
	return res, err
}

// BenchmarkHTTPOverhead runs print(1) through POST /v1/runs on loopback with the Go
// client, one at a time, and reports the p50 of what each request cost beyond its own
// Backend.Run (the library call, timed inside the server for the same run): the HTTP
// overhead, paired per run so the sandbox's own variation cancels out. Target ≤ 0.3 ms.
func BenchmarkHTTPOverhead(b *testing.B) {
	nb, err := backend(b)
	if err != nil {
		b.Skip(err)
	}
	tb := &timed{Backend: nb}
	s, err := server.New(server.Config{Backend: tb})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	c, _ := client.New(ts.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}))
	ctx := context.Background()
	req := api.RunRequest{Language: "python", Code: "print(1)"}
	var over, lib []time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := c.Run(ctx, req)
		total := time.Since(start)
		if err != nil || res.Status != api.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
		tb.mu.Lock()
		inner := tb.last
		tb.mu.Unlock()
		over = append(over, total-inner)
		lib = append(lib, inner)
	}
	slices.Sort(over)
	slices.Sort(lib)
	b.ReportMetric(float64(over[len(over)/2].Microseconds())/1000, "overhead-p50-ms")
	b.ReportMetric(float64(over[len(over)*99/100].Microseconds())/1000, "overhead-p99-ms")
	b.ReportMetric(float64(lib[len(lib)/2].Microseconds())/1000, "library-p50-ms")
}
