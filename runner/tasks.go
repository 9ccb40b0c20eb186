package runner

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

// Task is one sandboxed run: a spec, and the name people know it by (a file name).
type Task struct {
	Name string
	Spec sandbox.Spec
	// Err, when set, is why the task cannot run (an unreadable or binary file): it is
	// reported as the task's result, and nothing runs.
	Err error
}

// TaskResult is what became of a task: a result, or the error that kept it from one.
type TaskResult struct {
	Task
	Index   int // the task's position in the list
	Result  *sandbox.Result
	Err     error
	Started time.Time
}

// Failed reports whether the task did not end ok.
func (r TaskResult) Failed() bool {
	return r.Err != nil || r.Result == nil || r.Result.Status != sandbox.StatusOK
}

// Tasks runs tasks on a backend and records them.
type Tasks struct {
	Backend sandbox.Backend
	// Parallel is how many tasks run at once (< 1: one).
	Parallel int
	// Log receives the application log: a record when each task starts and ends, with
	// its verdict. Nil discards.
	Log *slog.Logger
	// Lines, when set, receives every line of every task's output once it finished,
	// tagged with the task and its run id.
	Lines LineLogger
	// Started and Finished are called as tasks start and finish, one call at a time.
	Started  func(i int, t Task)
	Finished func(TaskResult)
}

// Run runs every task, at most Parallel at once, in list order of starting, and
// returns their results in list order. When ctx ends, running tasks are stopped (their
// results say timeout) and the rest are reported with ctx's error.
func (ts *Tasks) Run(ctx context.Context, tasks []Task) []TaskResult {
	log := ts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	results := make([]TaskResult, len(tasks))
	var mu sync.Mutex // serializes the callbacks and the line log
	slots := make(chan struct{}, max(ts.Parallel, 1))
	var wg sync.WaitGroup
	for i, t := range tasks {
		if t.Err == nil && t.Spec.RunID == "" {
			t.Spec.RunID = sandbox.NewRunID()
		}
		// Every task takes its turn, those that cannot run too, so that results come
		// in list order when tasks run one at a time.
		acquired := false
		select {
		case slots <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		r := TaskResult{Task: t, Index: i, Started: time.Now(), Err: t.Err}
		if r.Err == nil {
			r.Err = ctx.Err() // ended while waiting, or with a slot free at once
		}
		if r.Err != nil {
			ts.finish(&mu, log, r)
			results[i] = r
			if acquired {
				<-slots
			}
			continue
		}
		mu.Lock()
		log.Info("task started", "task", t.Name, "run_id", t.Spec.RunID, "language", t.Spec.Language)
		if ts.Started != nil {
			ts.Started(i, t)
		}
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-slots }()
			r.Result, r.Err = ts.Backend.Run(ctx, t.Spec)
			if r.Result != nil && errors.Is(r.Err, sandbox.ErrSandbox) {
				r.Err = nil // the result says sandbox_error, with the reason
			}
			ts.finish(&mu, log, r)
			results[i] = r
		})
	}
	wg.Wait()
	return results
}

func (ts *Tasks) finish(mu *sync.Mutex, log *slog.Logger, r TaskResult) {
	mu.Lock()
	defer mu.Unlock()
	switch {
	case r.Err != nil:
		log.Error("task failed to run", "task", r.Name, "err", r.Err)
	default:
		res := r.Result
		attrs := []any{"task", r.Name, "run_id", res.RunID, "status", res.Status, "wall_ms", res.WallTime.Milliseconds()}
		if res.ExitCode != nil {
			attrs = append(attrs, "exit_code", *res.ExitCode)
		}
		if res.Signal != "" {
			attrs = append(attrs, "signal", res.Signal)
		}
		if res.Error != "" {
			attrs = append(attrs, "error", res.Error)
		}
		if d := res.Diagnostic; d != nil {
			attrs = append(attrs, "error_type", d.Type, "error_line", d.Line)
		}
		log.Info("task finished", attrs...)
		if ts.Lines != nil {
			end := r.Started.Add(res.WallTime)
			for _, s := range []struct{ name, text string }{{"stdout", res.Stdout}, {"stderr", res.Stderr}} {
				for line := range strings.Lines(s.text) {
					_ = ts.Lines.Line(end, r.Name+" "+res.RunID+" "+s.name, strings.TrimSuffix(line, "\n"))
				}
			}
		}
	}
	if ts.Finished != nil {
		ts.Finished(r)
	}
}
