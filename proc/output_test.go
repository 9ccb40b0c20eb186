package proc_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/proc"
)

// syncBuffer is a bytes.Buffer safe for a pump goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func TestSeveralSinksPerStream(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "out")
	appendFile := filepath.Join(dir, "appended")
	os.WriteFile(appendFile, []byte("before\n"), 0o644)
	var tee syncBuffer
	var mu sync.Mutex
	var got []proc.Line

	c := helper(t, "flood-lines", "1000")
	c.Stdout = []proc.Sink{
		proc.Capture(0),
		proc.Writer(&tee),
		proc.ToFile(file),
		proc.AppendFile(appendFile),
		proc.Lines(func(l proc.Line) { mu.Lock(); got = append(got, l); mu.Unlock() }),
	}
	res := run(t, c)

	var want bytes.Buffer
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if !bytes.Equal(res.Stdout, want.Bytes()) {
		t.Errorf("capture differs: %d bytes, want %d", len(res.Stdout), want.Len())
	}
	if !bytes.Equal(tee.Bytes(), want.Bytes()) {
		t.Errorf("tee differs")
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, want.Bytes()) {
		t.Errorf("file differs: %d bytes", len(b))
	}
	if b, _ := os.ReadFile(appendFile); !bytes.Equal(b, append([]byte("before\n"), want.Bytes()...)) {
		t.Errorf("appended file differs: %d bytes", len(b))
	}
	if len(got) != 1000 || got[0].Text != "line 1" || got[999].Text != "line 1000" || got[5].Stream != proc.Stdout || got[5].Kind != proc.LineFull {
		t.Errorf("lines: %d, first %+v", len(got), got[0])
	}
	if res.StdoutBytes != int64(want.Len()) {
		t.Errorf("StdoutBytes %d, want %d", res.StdoutBytes, want.Len())
	}
}

func TestDirectSinks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "direct")
	c := helper(t, "flood", "100000", "both")
	c.Stdout = []proc.Sink{proc.ToFile(file)}
	c.Stderr = []proc.Sink{proc.Discard()}
	res := run(t, c)
	if b, _ := os.ReadFile(file); len(b) != 100000 || !bytes.Equal(b, testenv.FloodData(100000)) {
		t.Errorf("file sink got %d bytes", len(b))
	}
	if res.Stdout != nil || res.Stderr != nil {
		t.Errorf("nothing should be captured: %d, %d", len(res.Stdout), len(res.Stderr))
	}
	c = helper(t, "echo", "x")
	c.Stdout = []proc.Sink{}
	if res := run(t, c); res.Status != proc.StatusOK || res.Stdout != nil {
		t.Errorf("empty sink list: %+v", res)
	}
	c = helper(t, "echo", "x")
	c.Stdout = []proc.Sink{proc.ToFile(filepath.Join(dir, "absent", "x"))}
	if _, err := c.Run(context.Background()); err == nil {
		t.Errorf("unopenable file sink started anyway")
	}
}

// File hands an open file to the child as its stdout when it is the only sink, and
// copies the stream to it otherwise.
func TestFileSink(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	c := proc.Command("/bin/sh", "-c", "readlink /proc/self/fd/1")
	c.Stdout = []proc.Sink{proc.File(w)}
	if res := run(t, c); res.Status != proc.StatusOK {
		t.Fatalf("direct: %+v", res)
	}
	c = helper(t, "echo", "copied")
	c.Stdout = []proc.Sink{proc.File(w), proc.Capture(0)}
	res := run(t, c)
	w.Close()
	got, _ := io.ReadAll(r)
	want := fmt.Sprintf("pipe:[%d]\ncopied\n", st.Ino)
	if string(got) != want || string(res.Stdout) != "copied\n" {
		t.Errorf("pipe got %q, want %q; captured %q", got, want, res.Stdout)
	}
	c = helper(t, "echo", "x")
	c.Stdout = []proc.Sink{proc.File(nil)}
	if _, err := c.Run(context.Background()); err == nil {
		t.Errorf("File(nil) started anyway")
	}
}

func TestCaptureKeepsHeadAndTail(t *testing.T) {
	const n, limit = 10 << 20, 1 << 20
	c := helper(t, "flood", strconv.Itoa(n))
	c.Stdout = []proc.Sink{proc.Capture(limit)}
	res := run(t, c)
	data := testenv.FloodData(n)
	want := append(bytes.Clone(data[:limit/2]), data[n-limit/2:]...)
	if !res.StdoutTruncated || res.StdoutBytes != n || !bytes.Equal(res.Stdout, want) {
		t.Errorf("truncated=%v bytes=%d len=%d; head/tail match: %v", res.StdoutTruncated, res.StdoutBytes, len(res.Stdout), bytes.Equal(res.Stdout, want))
	}
	// Exactly at the limit nothing is lost.
	c = helper(t, "flood", strconv.Itoa(limit))
	c.Stdout = []proc.Sink{proc.Capture(limit)}
	res = run(t, c)
	if res.StdoutTruncated || !bytes.Equal(res.Stdout, testenv.FloodData(limit)) {
		t.Errorf("at the limit: truncated=%v len=%d", res.StdoutTruncated, len(res.Stdout))
	}
}

func TestCaptureTailAcrossOddWrites(t *testing.T) {
	// Chunk sizes that do not divide the tail exercise the ring's wrap-around.
	for _, chunk := range []string{"1", "7", "4093", "65536", "300000"} {
		t.Run(chunk, func(t *testing.T) {
			const n, limit = 1_000_003, 10_000
			c := helper(t, "flood", strconv.Itoa(n), "stdout", chunk)
			c.Stdout = []proc.Sink{proc.Capture(limit)}
			res := run(t, c)
			data := testenv.FloodData(n)
			want := append(bytes.Clone(data[:limit/2]), data[n-limit/2:]...)
			if !bytes.Equal(res.Stdout, want) {
				t.Errorf("head/tail mismatch with %s-byte writes", chunk)
			}
		})
	}
}

func TestCombinedKeepsOrderAndStreams(t *testing.T) {
	c := proc.Command("/bin/sh", "-c", "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; sleep 0.05; echo four >&2")
	c.Combined = true
	res := run(t, c)
	if string(res.Combined) != "one\ntwo\nthree\nfour\n" {
		t.Errorf("combined %q", res.Combined)
	}
	if string(res.Stdout) != "one\nthree\n" || string(res.Stderr) != "two\nfour\n" {
		t.Errorf("separate streams lost: %q %q", res.Stdout, res.Stderr)
	}
}

func TestLinesFromAChild(t *testing.T) {
	var mu sync.Mutex
	var got []proc.Line
	record := proc.Lines(func(l proc.Line) { mu.Lock(); got = append(got, l); mu.Unlock() })
	c := helper(t, "cat")
	c.Stdin = proc.String("crlf\r\nlonger crlf line\r\n10%\r55%\r100%\nlast without newline")
	c.Stdout = []proc.Sink{record}
	run(t, c)
	want := []struct {
		text string
		kind proc.LineKind
	}{
		{"crlf", proc.LineFull}, {"longer crlf line", proc.LineFull},
		{"10%", proc.LineUpdate}, {"55%", proc.LineUpdate}, {"100%", proc.LineFull},
		{"last without newline", proc.LineUnterminated},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].Text != w.text || got[i].Kind != w.kind || got[i].Time.IsZero() {
			t.Errorf("line %d = %+v, want %q kind %v", i, got[i], w.text, w.kind)
		}
	}
}

func TestNeverDeadlocks(t *testing.T) {
	// Feeding a large stdin while the child writes large stdout and stderr completes
	// for any sizes, including ones far beyond the pipe buffers.
	for _, n := range []int{0, 1, 65535, 65536, 65537, 1 << 20, 16 << 20} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			c := helper(t, "duplex", strconv.Itoa(n))
			c.Stdin = proc.Bytes(make([]byte, n))
			res := run(t, c)
			if res.Status != proc.StatusOK || res.StdoutBytes != int64(n) || res.StderrBytes != int64(n) {
				t.Errorf("status %s stdout %d stderr %d, want ok %d %d", res.Status, res.StdoutBytes, res.StderrBytes, n, n)
			}
		})
	}
}

func TestChildIgnoringStdinIsNotAnError(t *testing.T) {
	c := helper(t, "write-without-reading-stdin", "1000000")
	c.Stdin = proc.Bytes(make([]byte, 32<<20))
	res, err := c.Run(context.Background())
	if err != nil || res.Status != proc.StatusOK || res.StdoutBytes != 1000000 {
		t.Errorf("err %v status %s stdout %d", err, res.Status, res.StdoutBytes)
	}
}

func TestOutputLimit(t *testing.T) {
	for _, stream := range []string{"stdout", "stderr"} {
		t.Run(stream, func(t *testing.T) {
			var tee syncBuffer
			c := helper(t, "flood", strconv.Itoa(1<<30), stream)
			c.OutputLimit = 1 << 20
			c.Grace = -1
			if stream == "stdout" {
				c.Stdout = []proc.Sink{proc.Capture(0), proc.Writer(&tee)}
			} else {
				c.Stderr = []proc.Sink{proc.Capture(0), proc.Writer(&tee)}
			}
			res := run(t, c)
			if res.Status != proc.StatusOutputLimit || res.Signal != 9 {
				t.Errorf("status %s signal %v, want output_limit by SIGKILL; stdout %d stderr %d dur %v args %v limit %d", res.Status, res.Signal, res.StdoutBytes, res.StderrBytes, res.Duration, c.Args[1:], c.OutputLimit)
			}
			if got := len(tee.Bytes()); got != 1<<20 {
				t.Errorf("tee got %d bytes, want exactly the limit", got)
			}
			if res.Err() == nil || !errorsIs(res.Err(), proc.ErrOutputLimit) {
				t.Errorf("Err() = %v", res.Err())
			}
		})
	}
}

func TestOutputLimitBoundaries(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name   string
		n      int
		chunk  int
		status proc.Status
	}{
		{"exactly the limit", limit, 64 << 10, proc.StatusOK},
		{"one byte over", limit + 1, 64 << 10, proc.StatusOutputLimit},
		{"over, reads ending on the limit", 4 * limit, limit, proc.StatusOutputLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := helper(t, "flood", strconv.Itoa(tt.n), "stdout", strconv.Itoa(tt.chunk))
			c.OutputLimit = limit
			res := run(t, c)
			if res.Status != tt.status || len(res.Stdout) != min(tt.n, limit) {
				t.Errorf("status %s captured %d, want %s %d", res.Status, len(res.Stdout), tt.status, min(tt.n, limit))
			}
		})
	}
}

func TestCloseStdoutAndLinger(t *testing.T) {
	// EOF on the pipes is not the end of the process: the result waits for the exit.
	start := time.Now()
	res := run(t, helper(t, "close-stdout-and-linger", "300ms"))
	if d := time.Since(start); d < 300*time.Millisecond || res.Status != proc.StatusOK || res.Duration < 300*time.Millisecond {
		t.Errorf("returned after %v with %s (duration %v): should wait for the exit", d, res.Status, res.Duration)
	}
}

func TestReadStdinThenWrite(t *testing.T) {
	in := testenv.FloodData(3 << 20)
	c := helper(t, "read-stdin-then-write")
	c.Stdin = proc.Bytes(in)
	res := run(t, c)
	if !bytes.Equal(res.Stdout, in) || string(res.Stderr) != fmt.Sprintf("read %d bytes\n", len(in)) {
		t.Errorf("echoed %d bytes, stderr %q", len(res.Stdout), res.Stderr)
	}
}

func TestDrainBoundKeepsBufferedOutput(t *testing.T) {
	// The drain bound cuts off writers that hold the pipe, never bytes already in it,
	// however late the pump runs.
	for i := range 200 {
		c := proc.Command("/bin/echo", "hello")
		c.DrainTimeout = time.Nanosecond
		res := run(t, c)
		if string(res.Stdout) != "hello\n" || res.OutputIncomplete {
			t.Fatalf("run %d: stdout %q incomplete %v", i, res.Stdout, res.OutputIncomplete)
		}
	}
}
