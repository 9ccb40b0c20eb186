package logfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// east is a zone whose midnight is not UTC's, so that mixing up the record
// timestamps (UTC) with the day boundary (Location) shows.
var east = time.FixedZone("UTC+5", 5*60*60)

func TestDailyRotationConcurrent(t *testing.T) {
	const goroutines, perGoroutine = 8, 1000
	lastEvening := time.Date(2026, 11, 21, 23, 59, 59, 900e6, east)
	nextMorning := time.Date(2026, 11, 22, 0, 0, 0, 100e6, east)

	tests := []struct {
		name string
		// write writes goroutine g's lines through w, reading clock.
		run func(t *testing.T, w *Writer, clock *fakeClock)
		// ordered: records carry the time of their writing, so they are in
		// order across the files.
		ordered bool
	}{
		{
			// The clock crosses midnight while all goroutines write, each
			// record stamped under the Writer's lock.
			name: "zero time, clock advancing",
			run: func(t *testing.T, w *Writer, clock *fakeClock) {
				// 8000 readings 25µs apart: 23:59:59.9 to 00:00:00.1.
				clock.step = 25 * time.Microsecond
				writeAll(t, goroutines, 0, perGoroutine, func(g, i int) error {
					return w.Line(time.Time{}, streamOf(i), textOf(g, i))
				})
			},
			ordered: true,
		},
		{
			// Callers stamp their lines (as pipe readers do) in the evening,
			// then in the morning; rotation follows Now, not the stamps.
			name: "explicit times",
			run: func(t *testing.T, w *Writer, clock *fakeClock) {
				clock.step = time.Microsecond
				line := func(g, i int) error { return w.Line(clock.Now(), streamOf(i), textOf(g, i)) }
				writeAll(t, goroutines, 0, perGoroutine/2, line)
				clock.Set(nextMorning)
				writeAll(t, goroutines, perGoroutine/2, perGoroutine, line)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.log")
			clock := &fakeClock{t: lastEvening}
			w, err := Open(Options{Path: path, Daily: true, Now: clock.Now, Location: east})
			if err != nil {
				t.Fatal(err)
			}
			tt.run(t, w, clock)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			files := readLog(t, path)
			if len(files) != 2 {
				t.Fatalf("want one backup and the active file, got %d files", len(files))
			}
			seen := map[string]int{}
			var prev time.Time
			for fi, f := range files {
				wantDay := []int{21, 22}[fi]
				for _, r := range f.records {
					if d := r.t.In(east).Day(); d != wantDay {
						t.Errorf("%s: record of day %d in the file of day %d: %+v", f.name, d, wantDay, r)
					}
					if tt.ordered && r.t.Before(prev) {
						t.Errorf("%s: %v after %v", f.name, r.t, prev)
					}
					prev = r.t
					seen[r.stream+" "+r.text]++
				}
			}
			for g := range goroutines {
				for i := range perGoroutine {
					if k := streamOf(i) + " " + textOf(g, i); seen[k] != 1 {
						t.Errorf("%q written %d times", k, seen[k])
					}
					delete(seen, streamOf(i)+" "+textOf(g, i))
				}
			}
			for k := range seen {
				t.Errorf("unexpected record %q", k)
			}
		})
	}
}

// writeAll calls line(g, i) for i in [from, to) from one goroutine per g.
func writeAll(t *testing.T, goroutines, from, to int, line func(g, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := from; i < to; i++ {
				if err := line(g, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func streamOf(i int) string { return [...]string{"stdout", "stderr"}[i%2] }

// textOf is long enough that a torn record could not pass for another.
func textOf(g, i int) string {
	return fmt.Sprintf("goroutine %d line %04d %s", g, i, strings.Repeat("x", 40))
}

func TestSizeRotation(t *testing.T) {
	const maxSize, maxBackups, lines = 4096, 3, 2000
	path := filepath.Join(t.TempDir(), "run.log")
	w, err := Open(Options{Path: path, MaxSize: maxSize, MaxBackups: maxBackups})
	if err != nil {
		t.Fatal(err)
	}
	for i := range lines {
		// Lengths vary so that files end at different offsets.
		text := fmt.Sprintf("%06d %s", i, strings.Repeat("y", i%97))
		if err := w.Line(time.Time{}, "stdout", text); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Lumberjack removes surplus backups in the background.
	waitFor(t, fmt.Sprintf("%d backups", maxBackups), func() bool { return len(backups(t, path)) == maxBackups })

	// What is kept is the tail of the output, whole: consecutive numbers up
	// to the last line, each file full up to the next record.
	files := readLog(t, path)
	next := -1
	for fi, f := range files {
		if f.size > maxSize {
			t.Errorf("%s: %d bytes, more than MaxSize", f.name, f.size)
		}
		for _, r := range f.records {
			var n int
			if _, err := fmt.Sscanf(r.text, "%06d", &n); err != nil {
				t.Fatalf("%s: %q: %v", f.name, r.text, err)
			}
			if next >= 0 && n != next {
				t.Fatalf("%s: line %d follows line %d", f.name, n, next-1)
			}
			next = n + 1
		}
		// Rotated only because the next record would not fit.
		if fi < len(files)-1 {
			r := files[fi+1].records[0]
			if n := len(appendRecordForTest(r.t, r.stream, r.text)); f.size+int64(n) <= maxSize {
				t.Errorf("%s: rotated at %d bytes though the next record (%d bytes) fit", f.name, f.size, n)
			}
		}
	}
	if next != lines {
		t.Errorf("last line kept is %d, want %d", next-1, lines-1)
	}
}

func TestSizeRotationExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	at := time.Date(2026, 11, 22, 4, 31, 54, 0, time.UTC)
	one := len(appendRecordForTest(at, "stdout", "0123456789"))
	w, err := Open(Options{Path: path, MaxSize: int64(3 * one)})
	if err != nil {
		t.Fatal(err)
	}
	for range 7 {
		if err := w.Line(at, "stdout", "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	// Longer than MaxSize: a file of its own, not split.
	long := strings.Repeat("z", 5*one)
	if err := w.Line(at, "stdout", long); err != nil {
		t.Fatal(err)
	}
	if err := w.Line(at, "stdout", "after"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, f := range readLog(t, path) {
		got = append(got, len(f.records))
	}
	if want := []int{3, 3, 1, 1, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records per file %v, want %v", got, want)
	}
}

func appendRecordForTest(t time.Time, stream, text string) []byte {
	var s stamper
	prefix, ms := s.stamp(t)
	return appendRecord(nil, prefix, ms, stream, countEscapes(stream), text, countEscapes(text))
}

func TestReopen(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, east)
	tests := []struct {
		name        string
		mtime       time.Time
		content     string
		wantBackups int
	}{
		{"written yesterday", now.Add(-12 * time.Hour), "old\n", 1},
		{"written earlier today", now.Add(-9 * time.Hour), "old\n", 0},
		{"empty since yesterday", now.Add(-12 * time.Hour), "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.log")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, tt.mtime, tt.mtime); err != nil {
				t.Fatal(err)
			}
			w, err := Open(Options{Path: path, Daily: true, Location: east, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(backups(t, path)); n != 0 {
				t.Fatalf("Open rotated: %d backups", n)
			}
			if err := w.Line(time.Time{}, "stdout", "new"); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			bs := backups(t, path)
			if len(bs) != tt.wantBackups {
				t.Fatalf("%d backups, want %d", len(bs), tt.wantBackups)
			}
			active, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantBackups == 1 {
				if b, _ := os.ReadFile(bs[0]); string(b) != tt.content {
					t.Errorf("backup holds %q, want %q", b, tt.content)
				}
				if strings.HasPrefix(string(active), tt.content) {
					t.Errorf("active file still holds yesterday's %q", active)
				}
			} else if !strings.HasPrefix(string(active), tt.content) {
				t.Errorf("active file %q lost %q", active, tt.content)
			}
			if !strings.HasSuffix(string(active), " stdout | new\n") {
				t.Errorf("active file %q lacks the new record", active)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "run.log")
	tests := []struct {
		name string
		o    Options
		is   error  // for errors.Is
		msg  string // in the message
	}{
		{"empty path", Options{}, ErrInvalidOptions, "Path is empty"},
		{"negative MaxSize", Options{Path: path, MaxSize: -1}, ErrInvalidOptions, "MaxSize is negative (-1)"},
		{"negative MaxBackups", Options{Path: path, MaxBackups: -2}, ErrInvalidOptions, "MaxBackups is negative (-2)"},
		{"negative MaxAge", Options{Path: path, MaxAge: -time.Hour}, ErrInvalidOptions, "MaxAge is negative (-1h0m0s)"},
		{"parent is a file", Options{Path: filepath.Join(file, "sub", "run.log")}, syscall.ENOTDIR, "not a directory"},
		{"path is a directory", Options{Path: dir}, syscall.EISDIR, "is a directory"},
		{"path is a device", Options{Path: os.DevNull}, nil, "not a regular file"},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			o    Options
			is   error
			msg  string
		}{"read-only directory", Options{Path: filepath.Join(ro, "run.log")}, fs.ErrPermission, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Open(tt.o)
			if err == nil {
				w.Close()
				t.Fatal("Open succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "logfile: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want it to start with logfile: and contain %q", err, tt.msg)
			}
		})
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("the directory given as Path was moved: %v", err)
	}
}

func TestLineEscapes(t *testing.T) {
	at := time.Date(2026, 11, 22, 4, 31, 54, 123456789, east)
	tests := []struct {
		stream, text string
		want         string // the record after the timestamp
	}{
		{"stdout", "plain", "stdout | plain"},
		{"stdout", "", "stdout | "},
		{"stderr", "two\nlines", `stderr | two\nlines`},
		{"stderr", "crlf\r\n", `stderr | crlf\r\n`},
		{"stderr", "\rprogress\r50%", `stderr | \rprogress\r50%`},
		{"stdout", `C:\dir\n`, `stdout | C:\\dir\\n`},
		{"stdout", "back\\\nslash", `stdout | back\\\nslash`},
		{"stdout", "tab\there \x1b[31mred\x1b[0m", "stdout | tab\there \x1b[31mred\x1b[0m"},
		{"stdout", "bad utf-8 \xff\xfe\x00", "stdout | bad utf-8 \xff\xfe\x00"},
		{"std\nout", "x", `std\nout | x`},
	}
	path := filepath.Join(t.TempDir(), "run.log")
	w, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if err := w.Line(at, tt.stream, tt.text); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) != len(tests) {
		t.Fatalf("%d lines for %d records:\n%s", len(lines), len(tests), b)
	}
	for i, tt := range tests {
		want := "2026-11-21T23:31:54.123Z " + tt.want + "\n"
		if lines[i] != want {
			t.Errorf("Line(%q, %q) wrote\n%q, want\n%q", tt.stream, tt.text, lines[i], want)
		}
		r, err := parseRecord(strings.TrimSuffix(lines[i], "\n"))
		if err != nil || r.stream != tt.stream || r.text != tt.text || !r.t.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("%q parses back to %+v, %v", lines[i], r, err)
		}
	}
}

func FuzzRecord(f *testing.F) {
	f.Add(int64(0), "stdout", "text")
	f.Add(int64(1795840314123456789), "stderr", "a\\\r\nb\\")
	f.Add(int64(-1), "", "\xff\n")
	f.Fuzz(func(t *testing.T, nanos int64, stream, text string) {
		at := time.Unix(0, nanos)
		if y := at.UTC().Year(); y < 0 || y > 9999 {
			t.Skip("timestamp is 24 bytes for years 0000-9999 only")
		}
		rec := appendRecordForTest(at, stream, text)
		var s stamper
		prefix, _ := s.stamp(at)
		if n := recordLen(len(prefix), stream, countEscapes(stream), text, countEscapes(text)); n != len(rec) {
			t.Fatalf("recordLen %d, record %d bytes", n, len(rec))
		}
		if strings.IndexAny(string(rec), "\r\n") != len(rec)-1 {
			t.Fatalf("record %q is not one line", rec)
		}
		if strings.ContainsAny(stream, " |") {
			return // documented as ambiguous
		}
		r, err := parseRecord(string(rec[:len(rec)-1]))
		if err != nil {
			t.Fatalf("%q: %v", rec, err)
		}
		if r.stream != stream || r.text != text || !r.t.Equal(at.Truncate(time.Millisecond)) {
			t.Fatalf("%q parses to %+v", rec, r)
		}
	})
}

func TestStamper(t *testing.T) {
	var s stamper
	base := time.Date(2026, 11, 22, 23, 59, 58, 0, east)
	for _, d := range []time.Duration{0, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond, -time.Hour, 0} {
		at := base.Add(d)
		prefix, ms := s.stamp(at)
		got := fmt.Sprintf("%s%03dZ", prefix, ms)
		if want := at.UTC().Format(tsFormat); got != want {
			t.Errorf("%v: %s, want %s", at, got, want)
		}
	}
}

func TestBufferedUntilFlushed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	w, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	// The timer writes a lone record out without further calls.
	if err := w.Line(time.Time{}, "stdout", "first"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a timed flush", func() bool { return size() > 0 })

	// Flush writes at once; test it while the timer is far from due.
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	before := size()
	if err := w.Line(time.Time{}, "stdout", "second"); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if size() == before {
		t.Error("Flush left the record buffered")
	}
}

func TestCloseFlushesAndIsFinal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	w, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Line(time.Time{}, "stdout", "kept"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.HasSuffix(string(b), " stdout | kept\n") {
		t.Errorf("after Close the file holds %q", b)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Line(time.Time{}, "stdout", "late"); !errors.Is(err, ErrClosed) {
		t.Errorf("Line after Close: %v", err)
	}
	if _, err := w.Write([]byte("late\n")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	for name, f := range map[string]func() error{"Flush": w.Flush, "Rotate": w.Rotate} {
		if err := f(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	clock := &fakeClock{t: time.Date(2026, 11, 21, 23, 0, 0, 0, east)}
	w, err := Open(Options{Path: path, Daily: true, Location: east, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("# started\n")
	big := []byte(strings.Repeat("b", 3*bufferSize) + "\n") // bypasses the buffer
	for _, p := range [][]byte{small, big, small} {
		if n, err := w.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	clock.Set(time.Date(2026, 11, 22, 0, 0, 1, 0, east))
	if _, err := w.Write(small); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bs := backups(t, path)
	if len(bs) != 1 {
		t.Fatalf("%d backups, want 1 (daily rotation applies to Write)", len(bs))
	}
	old, _ := os.ReadFile(bs[0])
	cur, _ := os.ReadFile(path)
	if want := string(small) + string(big) + string(small); string(old) != want {
		t.Errorf("backup holds %d bytes, want %d in order", len(old), len(want))
	}
	if string(cur) != string(small) {
		t.Errorf("active file holds %q", cur)
	}
}

func TestRotateCompress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	w, err := Open(Options{Path: path, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 3 {
		if err := w.Line(time.Time{}, "stdout", fmt.Sprint("file ", i)); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two compressed backups", func() bool {
		bs := backups(t, path)
		return len(bs) == 2 && strings.HasSuffix(bs[0], ".gz") && strings.HasSuffix(bs[1], ".gz")
	})
	for i, f := range readLog(t, path) {
		if len(f.records) != 1 || f.records[0].text != fmt.Sprint("file ", i) {
			t.Errorf("%s: %+v", f.name, f.records)
		}
	}
}

func TestMaxAgeDays(t *testing.T) {
	for d, want := range map[time.Duration]int{
		0:                  0,
		time.Nanosecond:    1,
		time.Hour:          1,
		24 * time.Hour:     1,
		36 * time.Hour:     2,
		7 * 24 * time.Hour: 7,
	} {
		if got := maxAgeDays(d); got != want {
			t.Errorf("maxAgeDays(%v) = %d, want %d", d, got, want)
		}
	}
}

const benchText = "" +
	"2026/11/22 04:31:54 worker 17: processed batch 4711 (512 items) in 38.2ms, queue depth 3, status ok"

func BenchmarkLine(b *testing.B) {
	text := benchText[:99] // a 100-byte line without its "\n"
	open := func(b *testing.B) *Writer {
		// Sized rotation keeps the disk use of long runs bounded.
		w, err := Open(Options{
			Path: filepath.Join(b.TempDir(), "run.log"), Daily: true,
			MaxSize: 256 << 20, MaxBackups: 1,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { w.Close() })
		return w
	}
	b.Run("serial", func(b *testing.B) {
		w := open(b)
		b.SetBytes(int64(len(text) + 1))
		b.ReportAllocs()
		for b.Loop() {
			if err := w.Line(time.Time{}, "stdout", text); err != nil {
				b.Fatal(err)
			}
		}
	})
	// stdout and stderr of one command, each read by its own goroutine.
	b.Run("two streams", func(b *testing.B) {
		w := open(b)
		b.SetBytes(int64(len(text) + 1))
		b.ReportAllocs()
		b.SetParallelism(1)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := w.Line(time.Time{}, "stderr", text); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLumberjackPerRecord is the baseline Writer's buffer is measured
// against: each record written to lumberjack, so one system call per line.
func BenchmarkLumberjackPerRecord(b *testing.B) {
	lj := &lumberjack.Logger{Filename: filepath.Join(b.TempDir(), "run.log"), MaxSize: 256, MaxBackups: 1}
	b.Cleanup(func() { lj.Close() })
	rec := appendRecordForTest(time.Now(), "stdout", benchText[:99])
	b.SetBytes(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := lj.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLongLine(t *testing.T) {
	// Longer than the buffer, and longer still once escaped.
	text := strings.Repeat("line\\\n", 3*bufferSize/7)
	path := filepath.Join(t.TempDir(), "run.log")
	w, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"before", text, "after"} {
		if err := w.Line(time.Time{}, "stdout", s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := readLog(t, path)
	if rs := files[0].records; len(rs) != 3 || rs[0].text != "before" || rs[1].text != text || rs[2].text != "after" {
		t.Errorf("%d records, not before, the long line and after", len(rs))
	}
}
