package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

// BenchmarkHTTPOverhead runs the same snippet on the same native backend two ways,
// alternating, one at a time: Backend.Run (the library call) and POST /v1/runs on
// loopback with the Go client. It reports the p50 of each and their difference, the
// HTTP overhead per run (target ≤ 0.3 ms). Alternating puts both sides under the same
// background work (the warm boxes' refill) and the same drift of the machine.
func BenchmarkHTTPOverhead(b *testing.B) {
	be, err := backend(b) // warm, as runbox serve has it
	if err != nil {
		b.Skip(err)
	}
	if nb, ok := be.(*native.Backend); ok {
		if err := nb.Prewarm(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	s, err := server.New(server.Config{Backend: be})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	c, _ := client.New(ts.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}))
	ctx := context.Background()
	cmd := []string{"/bin/true"}
	lib := func() {
		if res, err := be.Run(ctx, sandbox.Spec{Command: cmd}); err != nil || res.Status != sandbox.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
	}
	overHTTP := func() {
		if res, err := c.Run(ctx, api.RunRequest{Command: cmd}); err != nil || res.Status != api.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
	}
	var libT, httpT []time.Duration
	i := 0
	for b.Loop() {
		first, second, firstT, secondT := lib, overHTTP, &libT, &httpT
		if i%2 == 1 {
			first, second, firstT, secondT = overHTTP, lib, &httpT, &libT
		}
		i++
		start := time.Now()
		first()
		mid := time.Now()
		second()
		*firstT = append(*firstT, mid.Sub(start))
		*secondT = append(*secondT, time.Since(mid))
	}
	p50 := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	l, h := p50(libT), p50(httpT)
	b.ReportMetric(l, "library-p50-ms")
	b.ReportMetric(h, "http-p50-ms")
	b.ReportMetric(h-l, "overhead-ms")
}
