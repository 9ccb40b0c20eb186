package native_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

// The benchmarks of issue #8, which bench/warm.sh prints beside bare python, bwrap and
// docker run: code in a language (not a command line), so that the warm template runs
// Python in its started interpreter.
var (
	pyPrint = sandbox.Spec{Language: "python", Code: "print(1)\n"}
	jsPrint = sandbox.Spec{Language: "javascript", Code: "console.log(1)\n"}
)

// BenchmarkWarmPython is print(1) in Python, forked from the warm template.
func BenchmarkWarmPython(b *testing.B) { benchSpec(b, newWarmBackend(b), pyPrint) }

// BenchmarkColdPython is print(1) in Python in a box built for the run.
func BenchmarkColdPython(b *testing.B) { benchSpec(b, newColdBackend(b), pyPrint) }

// BenchmarkWarmJavaScript is console.log(1) back to back, forked from the warm
// template: a run takes a JavaScript ready run (node started and confined, waiting
// for the run) when one was made in time, and execs node otherwise. Timing starts
// with the ready runs made.
func BenchmarkWarmJavaScript(b *testing.B) { benchJS(b, nil) }

// BenchmarkWarmJavaScriptPaced is BenchmarkWarmJavaScript with a pause before each
// run, 150, 200, 250, 300 ms in turn, as an agent makes them (the pauses are not
// timed): the pauses give the ready runs time to be made.
func BenchmarkWarmJavaScriptPaced(b *testing.B) {
	benchJS(b, []time.Duration{150 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 300 * time.Millisecond})
}

// benchJS runs jsPrint once per op after a pause from pauses in turn (none: back to
// back), once the JavaScript ready runs the first run asked for are made. Besides p50
// and p99 it reports the share of runs that took a ready run and the CPU time of
// making one.
func benchJS(b *testing.B, pauses []time.Duration) {
	be := newWarmBackend(b)
	mustRun(b, be, jsPrint)
	for deadline := time.Now().Add(30 * time.Second); native.JSReady(be).Waiting < runtime.NumCPU(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("no JavaScript ready runs made in 30 s")
		}
	}
	before := native.JSReady(be)
	times := make([]time.Duration, 0, b.N)
	for b.Loop() {
		if len(pauses) > 0 {
			b.StopTimer()
			time.Sleep(pauses[len(times)%len(pauses)])
			b.StartTimer()
		}
		start := time.Now()
		mustRun(b, be, jsPrint)
		times = append(times, time.Since(start))
	}
	after := native.JSReady(be)
	reportP50(b, times)
	reportP99(b, times)
	b.ReportMetric(100*float64(after.Taken-before.Taken)/float64(len(times)), "ready-%")
	if after.Made > 0 {
		b.ReportMetric(float64(after.MadeCPU)/float64(after.Made)/float64(time.Millisecond), "ready-cpu-ms")
	}
}

// BenchmarkColdJavaScript is console.log(1) in a box built for the run.
func BenchmarkColdJavaScript(b *testing.B) { benchSpec(b, newColdBackend(b), jsPrint) }

// BenchmarkWarmPython2Clients is print(1) by two clients back to back, sharing b.N
// runs: the sustained rate.
func BenchmarkWarmPython2Clients(b *testing.B) { benchClients(b, newWarmBackend(b), pyPrint, 2) }

// BenchmarkColdPython2Clients is BenchmarkWarmPython2Clients with cold boxes.
func BenchmarkColdPython2Clients(b *testing.B) { benchClients(b, newColdBackend(b), pyPrint, 2) }

// benchSpec runs spec once per op, one at a time (after one run outside the timing),
// and reports p50 and p99.
func benchSpec(b *testing.B, be *native.Backend, spec sandbox.Spec) {
	mustRun(b, be, spec)
	times := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		mustRun(b, be, spec)
		times = append(times, time.Since(start))
	}
	reportP50(b, times)
	reportP99(b, times)
}

// benchClients runs spec b.N times from clients goroutines, back to back, and reports
// runs/s and the p50 and p99 of single runs.
func benchClients(b *testing.B, be *native.Backend, spec sandbox.Spec, clients int) {
	mustRun(b, be, spec)
	var (
		mu    sync.Mutex
		times []time.Duration
		next  = make(chan struct{})
		wg    sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for range next {
				t := time.Now()
				res, err := be.Run(context.Background(), spec)
				d := time.Since(t)
				if err != nil || res.Status != sandbox.StatusOK {
					b.Error(describe(res, err))
					continue
				}
				mu.Lock()
				times = append(times, d)
				mu.Unlock()
			}
		})
	}
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
	reportP50(b, times)
	reportP99(b, times)
}

// reportP99 reports the 99th percentile of times in milliseconds.
func reportP99(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100])/float64(time.Millisecond), "p99-ms")
}
