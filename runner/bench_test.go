package runner_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/logfile"
	"github.com/runboxhq/runbox/runner"
)

// BenchmarkWatchLog is `runbox exec --quiet --log FILE` on 100-byte lines.
func BenchmarkWatchLog(b *testing.B) {
	const size = 256 << 20
	b.SetBytes(size)
	for b.Loop() {
		lw, err := logfile.Open(logfile.Options{Path: filepath.Join(b.TempDir(), "run.log"), Daily: true})
		if err != nil {
			b.Fatal(err)
		}
		argv, env := testenvCommand(b, "lines-100", strconv.Itoa(size))
		w := &runner.Watch{Cmd: cmdOf(argv, env), Log: lw, Emit: func(api.Event) {}}
		if _, res, err := w.Run(context.Background()); err != nil || res.StdoutBytes != size {
			b.Fatal(err, res.StdoutBytes)
		}
		lw.Close()
	}
}
