package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLogs creates n log files of about size bytes each in dir, with varied lines
// (timestamps, levels, ids) so the compressor has real work, and returns their paths.
func writeLogs(t *testing.T, dir string, n, size int) []string {
	t.Helper()
	levels := []string{"DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"}
	msgs := []string{"request served", "cache miss", "retrying upstream", "user login", "slow query", "connection reset"}
	var paths []string
	for i := range n {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		ts := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		var b bytes.Buffer
		for b.Len() < size {
			ts = ts.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
			fmt.Fprintf(&b, "%s %-5s req=%016x user=%d path=/api/v1/items/%d dur=%dms %s\n",
				ts.Format(time.RFC3339Nano), levels[rng.IntN(len(levels))], rng.Uint64(),
				rng.IntN(10000), rng.IntN(1e6), rng.IntN(2000), msgs[rng.IntN(len(msgs))])
		}
		p := filepath.Join(dir, fmt.Sprintf("app-%02d.log", i))
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// checkNoPartial fails if dir holds a temp file, or a .gz that is not a complete
// gzip stream of its .log.
func checkNoPartial(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			t.Errorf("temp file left in dir: %s", name)
		case strings.HasSuffix(name, ".log.gz"):
			want, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(name, ".gz")))
			if err != nil {
				t.Fatal(err)
			}
			if got := gunzip(t, filepath.Join(dir, name)); !bytes.Equal(got, want) {
				t.Errorf("%s: decompresses to %d bytes, want the %d of the original", name, len(got), len(want))
			}
		}
	}
}

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func TestCompressDir(t *testing.T) {
	dir := t.TempDir()
	logs := writeLogs(t, dir, 4, 1<<20)
	// Two *.log entries that cannot be compressed: a directory and a dangling
	// symlink (chmod 000 would not stop root).
	if err := os.Mkdir(filepath.Join(dir, "isdir.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "dangling.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a log\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	sum, err := compressDir(t.Context(), dir, 2, 6, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files != len(logs) || sum.Failed != 2 {
		t.Errorf("summary = %+v, want %d files and 2 failed", sum, len(logs))
	}
	for _, name := range []string{"isdir.log", "dangling.log"} {
		if want := "compress: " + filepath.Join(dir, name) + ": "; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
		if _, err := os.Lstat(filepath.Join(dir, name+".gz")); err == nil {
			t.Errorf("%s.gz exists for a failed file", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt.gz")); err == nil {
		t.Error("notes.txt was compressed, want only *.log")
	}

	gz, err := exec.LookPath("/bin/gzip")
	if err != nil {
		t.Log("no /bin/gzip; checking with compress/gzip only")
	}
	var in int64
	for _, p := range logs {
		want, err := os.ReadFile(p) // the original is kept
		if err != nil {
			t.Fatal(err)
		}
		in += int64(len(want))
		if got := gunzip(t, p+".gz"); !bytes.Equal(got, want) {
			t.Errorf("%s.gz: compress/gzip gives %d bytes, want %d", p, len(got), len(want))
		}
		if gz != "" {
			got, err := exec.CommandContext(t.Context(), gz, "-d", "-c", p+".gz").Output()
			if err != nil {
				t.Errorf("gzip -d -c %s.gz: %v", p, err)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s.gz: gzip -d gives %d bytes, want %d", p, len(got), len(want))
			}
		}
	}
	if sum.BytesIn != in || sum.BytesOut <= 0 || sum.BytesOut >= in {
		t.Errorf("summary bytes %d → %d, want %d in and fewer out", sum.BytesIn, sum.BytesOut, in)
	}
	checkNoPartial(t, dir)
}

func TestCompressDirCanceled(t *testing.T) {
	t.Run("before start", func(t *testing.T) {
		dir := t.TempDir()
		writeLogs(t, dir, 2, 64<<10)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		sum, err := compressDir(ctx, dir, 2, 6, io.Discard)
		if err != context.Canceled || sum.Files != 0 {
			t.Errorf("compressDir = %+v, %v; want no files and context.Canceled", sum, err)
		}
		checkNoPartial(t, dir)
	})
	t.Run("midway", func(t *testing.T) {
		dir := t.TempDir()
		writeLogs(t, dir, 6, 2<<20)
		// Whenever the cancel lands, each .gz must be whole or absent.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		var stderr bytes.Buffer
		sum, err := compressDir(ctx, dir, 2, 9, &stderr)
		t.Logf("%v, err = %v", sum, err)
		if err == nil && sum.Files != 6 {
			t.Errorf("no error but only %d of 6 files", sum.Files)
		}
		if stderr.Len() > 0 {
			t.Errorf("cancellation reported as file failures:\n%s", stderr.String())
		}
		checkNoPartial(t, dir)
	})
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	writeLogs(t, dir, 1, 1<<10)
	bad := t.TempDir()
	if err := os.Mkdir(filepath.Join(bad, "x.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{dir}, 0},
		{[]string{"-j", "1", "-level", "1", dir}, 0},
		{[]string{bad}, 1},
		{[]string{filepath.Join(dir, "missing")}, 1},
		{[]string{}, 2},
		{[]string{dir, dir}, 2},
		{[]string{"-j", "0", dir}, 2},
		{[]string{"-level", "10", dir}, 2},
		{[]string{"-bogus", dir}, 2},
	} {
		var stdout, stderr bytes.Buffer
		if got := run(t.Context(), tc.args, &stdout, &stderr); got != tc.want {
			t.Errorf("run %q = %d, want %d; stderr:\n%s", tc.args, got, tc.want, stderr.String())
		}
	}
}
