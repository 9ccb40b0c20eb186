// Command compress gzips every *.log file in a directory to FILE.log.gz, several
// files at a time: the Go counterpart of Python's Pool.map(compress_file, files).
//
//	compress [-j N] [-level L] DIR
//
// Each output is written to a temporary file in DIR and renamed into place, so a
// partial .gz never appears under its final name, even on error or interrupt. An
// existing FILE.log.gz is replaced; the original FILE.log is kept. A file that fails
// is reported on stderr and the others go on. Exit code 1 means a file failed or the
// run was interrupted, 2 a usage error.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

// copyBufferSize is the read size per file; large enough that the compressor,
// not the syscalls, sets the pace.
const copyBufferSize = 256 << 10

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compress", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jobs := fs.Int("j", runtime.NumCPU(), "files compressed at once")
	level := fs.Int("level", 6, "gzip level, 1 (fastest) to 9 (smallest)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: compress [-j N] [-level L] DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *jobs < 1 || *level < gzip.BestSpeed || *level > gzip.BestCompression {
		fs.Usage()
		return 2
	}
	sum, err := compressDir(ctx, fs.Arg(0), *jobs, *level, stderr)
	fmt.Fprintln(stdout, sum)
	if err != nil {
		fmt.Fprintf(stderr, "compress: %v\n", err)
		return 1
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}

// summary counts the files compressed; bytes are those of the successful files.
type summary struct {
	Files    int
	Failed   int
	BytesIn  int64
	BytesOut int64
	Elapsed  time.Duration
}

func (s summary) String() string {
	secs := s.Elapsed.Seconds()
	var mbps, pct float64
	if secs > 0 {
		mbps = float64(s.BytesIn) / 1e6 / secs
	}
	if s.BytesIn > 0 {
		pct = 100 * float64(s.BytesOut) / float64(s.BytesIn)
	}
	return fmt.Sprintf("compress: %d files (%d failed), %d → %d bytes (%.1f%%), %.2f s, %.1f MB/s",
		s.Files, s.Failed, s.BytesIn, s.BytesOut, pct, secs, mbps)
}

// compressDir compresses every *.log entry of dir, at most jobs at a time. A file
// that fails is reported on stderr as "compress: FILE: error" and counted in
// summary.Failed. The error is non-nil only when the run itself could not proceed:
// bad arguments, an unreadable dir, or ctx ending (files not finished by then
// are left without a .gz and are not reported).
func compressDir(ctx context.Context, dir string, jobs, level int, stderr io.Writer) (summary, error) {
	start := time.Now()
	var sum summary
	if jobs < 1 {
		return sum, fmt.Errorf("jobs = %d, want ≥ 1", jobs)
	}
	if _, err := gzip.NewWriterLevel(io.Discard, level); err != nil {
		return sum, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return sum, err
	}
	var paths []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(paths)

	var (
		wg  sync.WaitGroup
		mu  sync.Mutex // guards sum and stderr
		sem = make(chan struct{}, jobs)
	)
	for _, path := range paths {
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			in, out, err := compressFile(ctx, path, level)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				sum.Files++
				sum.BytesIn += in
				sum.BytesOut += out
			case ctx.Err() != nil && errors.Is(err, ctx.Err()):
				// Interrupted, not failed: the run's error says so once.
			default:
				sum.Failed++
				fmt.Fprintf(stderr, "compress: %s: %v\n", path, err)
			}
		})
	}
	wg.Wait()
	sum.Elapsed = time.Since(start)
	return sum, ctx.Err()
}

// compressFile writes path.gz through a temporary file in the same directory, so
// the rename is atomic. It returns the sizes read and written.
func compressFile(ctx context.Context, path string, level int) (in, out int64, err error) {
	src, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return 0, 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, 0, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}

	// The temp name does not end in .log, so a rerun never picks up a leftover.
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	bw := bufio.NewWriterSize(tmp, copyBufferSize)
	zw, err := gzip.NewWriterLevel(bw, level)
	if err != nil {
		return 0, 0, err
	}
	zw.Name = filepath.Base(path)
	zw.ModTime = fi.ModTime()
	in, err = io.CopyBuffer(zw, ctxReader{ctx, src}, make([]byte, copyBufferSize))
	if err != nil {
		return in, 0, err
	}
	if err = zw.Close(); err != nil {
		return in, 0, err
	}
	if err = bw.Flush(); err != nil {
		return in, 0, err
	}
	// Like gzip -k: the output gets the input's permissions. CreateTemp made it 0600.
	if err = tmp.Chmod(fi.Mode().Perm()); err != nil {
		return in, 0, err
	}
	if out, err = tmp.Seek(0, io.SeekCurrent); err != nil {
		return in, 0, err
	}
	if err = tmp.Close(); err != nil {
		return in, 0, err
	}
	if err = ctx.Err(); err != nil {
		return in, 0, err
	}
	if err = os.Rename(tmp.Name(), path+".gz"); err != nil {
		return in, 0, err
	}
	return in, out, nil
}

// ctxReader stops a copy between reads once ctx is done. Being a plain Reader, it
// also keeps io.CopyBuffer from taking a WriterTo/ReaderFrom shortcut around the buffer.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
