package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

// BenchmarkHTTPOverhead measures what POST /v1/runs adds to a run (target ≤ 0.3 ms),
// on the warm native backend as runbox serve has it (RUNBOX_BENCH_BACKEND=host or
// noop: see benchBackend), with /bin/true, one run at a time.
//
// Per request, on the same run: the client's wall time of the call less the time of
// Backend.Run the server reports in its Server-Timing header, which is everything
// outside the run (encoding, loopback, admission, decoding, validation, the answer,
// its decoding). Its p50 and p99 are overhead-p50-ms and overhead-p99-ms; of it,
// handler-p50-ms is inside the handler and wire-p50-ms outside it.
//
// Beside that, the library call and the HTTP call alternate, and their p50s are
// compared (difference-p50-ms): the check that the HTTP path does not slow the run
// itself. Alternating puts both under the same background work (the warm boxes'
// refill) and the same drift of the machine, but a difference of two medians of ~20 ms
// runs is only as good as the machine's noise, a millisecond or two on a VM.
func BenchmarkHTTPOverhead(b *testing.B) {
	be := warmBackend(b)
	s, err := server.New(server.Config{Backend: be})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	c, _ := client.New(ts.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}))
	ctx := context.Background()
	cmd := []string{"/bin/true"}
	var libT, httpT, overT, handlerT, wireT []time.Duration
	lib := func() {
		start := time.Now()
		if res, err := be.Run(ctx, sandbox.Spec{Command: cmd}); err != nil || res.Status != sandbox.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
		libT = append(libT, time.Since(start))
	}
	overHTTP := func() {
		start := time.Now()
		res, tm, err := c.RunTimed(ctx, api.RunRequest{Command: cmd})
		took := time.Since(start)
		if err != nil || res.Status != api.StatusOK || tm.Total == 0 {
			b.Fatalf("%+v %+v %v", res, tm, err)
		}
		httpT = append(httpT, took)
		overT = append(overT, took-tm.Run)
		handlerT = append(handlerT, tm.Total-tm.Run)
		wireT = append(wireT, took-tm.Total)
	}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			lib()
			overHTTP()
		} else {
			overHTTP()
			lib()
		}
		i++
	}
	report(b, "overhead", overT)
	report(b, "handler", handlerT)
	report(b, "wire", wireT)
	l50, t50 := report(b, "library", libT), report(b, "http", httpT)
	b.ReportMetric(t50-l50, "difference-p50-ms")
}

// BenchmarkLoopbackAfterRun is the floor under BenchmarkHTTPOverhead's overhead: a
// bare TCP round trip on loopback (a request and an answer of a run's sizes, between
// two goroutines of this process), each right after a Backend.Run of the same
// snippet, as each HTTP request there is. On a VM whose CPUs sleep while a run
// waits, waking them costs more than the round trip itself.
func BenchmarkLoopbackAfterRun(b *testing.B) {
	be := warmBackend(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	const ask, answer = 40, 700 // bytes, about those of /bin/true's request and result
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, answer)
		for {
			if _, err := io.ReadFull(c, buf[:ask]); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, answer)
	ctx := context.Background()
	var rtt []time.Duration
	for b.Loop() {
		if res, err := be.Run(ctx, sandbox.Spec{Command: []string{"/bin/true"}}); err != nil || res.Status != sandbox.StatusOK {
			b.Fatalf("%+v %v", res, err)
		}
		start := time.Now()
		if _, err := c.Write(buf[:ask]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(start))
	}
	report(b, "loopback", rtt)
}

// warmBackend is benchBackend's, its native template started as runbox serve has it.
func warmBackend(b *testing.B) sandbox.Backend {
	be := benchBackend(b)
	if nb, ok := be.(*native.Backend); ok {
		if err := nb.Prewarm(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return be
}
