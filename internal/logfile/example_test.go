package logfile_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runboxhq/runbox/internal/logfile"
)

func Example() {
	dir, err := os.MkdirTemp("", "logfile")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "run.log")

	clock := time.Date(2026, 11, 22, 4, 31, 54, 123e6, time.UTC)
	w, err := logfile.Open(logfile.Options{
		Path:       path,
		Daily:      true,
		MaxSize:    64 << 20,
		MaxBackups: 7,
		Now:        func() time.Time { return clock },
	})
	if err != nil {
		panic(err)
	}
	// A zero time stamps the record when it is written.
	w.Line(time.Time{}, "stdout", "compiling")
	// A pipe reader passes the time it read the line.
	w.Line(clock.Add(1500*time.Millisecond), "stderr", "warning:\r\n\tunused variable `x`")
	if err := w.Close(); err != nil {
		panic(err)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(b))
	// Output:
	// 2026-11-22T04:31:54.123Z stdout | compiling
	// 2026-11-22T04:31:55.623Z stderr | warning:\r\n	unused variable `x`
}
