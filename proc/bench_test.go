package proc_test

import (
	"bytes"
	"context"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runboxhq/runbox/proc"
)

// BenchmarkSpawn compares starting and waiting for /bin/true, both capturing stdout
// and stderr (proc's default; os/exec with bytes.Buffer, its usual capture).
func BenchmarkSpawn(b *testing.B) {
	ctx := context.Background()
	b.Run("osexec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out, errOut bytes.Buffer
			c := exec.Command("/bin/true")
			c.Stdout, c.Stderr = &out, &errOut
			if err := c.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := proc.Run(ctx, "/bin/true")
			if err != nil || res.Status != proc.StatusOK {
				b.Fatal(err, res.Status)
			}
		}
	})
	b.Run("proc_process_group", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := proc.Command("/bin/true")
			c.Containment = proc.ContainProcessGroup
			if _, err := c.Run(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// captureSize is what BenchmarkCapture reads from the child; dd writes it in 1 MiB blocks.
const captureSize = 1 << 30

var ddArgs = []string{"/bin/dd", "if=/dev/zero", "bs=1M", "count=1024", "status=none"}

// peakHeap returns how much f added to the heap at its peak: the heap is collected
// first, then sampled while f runs, so garbage from earlier iterations is not counted
// but f's own (buffer growth) is.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	<-done
	return peak.Load()
}

// BenchmarkCapture reads 1 GiB from a child: os/exec into a bytes.Buffer against proc
// into its bounded capture (DefaultCaptureLimit).
func BenchmarkCapture(b *testing.B) {
	ctx := context.Background()
	b.Run("osexec_buffer", func(b *testing.B) {
		b.SetBytes(captureSize)
		b.ReportAllocs()
		var peak uint64
		for b.Loop() {
			peak = max(peak, peakHeap(func() {
				var out bytes.Buffer
				c := exec.Command(ddArgs[0], ddArgs[1:]...)
				c.Stdout = &out
				if err := c.Run(); err != nil || out.Len() != captureSize {
					b.Fatal(err, out.Len())
				}
			}))
		}
		b.ReportMetric(float64(peak), "peak-heap-B")
	})
	b.Run("proc", func(b *testing.B) {
		b.SetBytes(captureSize)
		b.ReportAllocs()
		var peak uint64
		for b.Loop() {
			peak = max(peak, peakHeap(func() {
				res, err := proc.Run(ctx, ddArgs[0], ddArgs[1:]...)
				if err != nil || res.StdoutBytes != captureSize || len(res.Stdout) != proc.DefaultCaptureLimit {
					b.Fatal(err, res.StdoutBytes)
				}
			}))
		}
		b.ReportMetric(float64(peak), "peak-heap-B")
		b.ReportMetric(float64(peak)/proc.DefaultCaptureLimit, "peak/cap")
	})
}
