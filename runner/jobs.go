package runner

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/runboxhq/runbox/proc"
)

// Job is one command of a batch.
type Job struct {
	Seq int // 1-based position in the batch
	Arg string
	Cmd *proc.Cmd
}

// JobResult is a finished job.
type JobResult struct {
	Job
	Result *proc.Result
	Err    error // start error
}

// Failed reports whether the job did not succeed.
func (r JobResult) Failed() bool { return r.Err != nil || !r.Result.Success() }

// Expand builds a job's argv from a template, GNU parallel style: {} is the argument,
// {.} without its extension, {/} its base name, {//} its directory, {/.} the base name
// without extension, {#} the job number. A template without any placeholder gets the
// argument appended. The command is executed directly, not through a shell.
func Expand(template []string, arg string, seq int) []string {
	r := strings.NewReplacer(
		"{//}", filepath.Dir(arg),
		"{/.}", strings.TrimSuffix(filepath.Base(arg), filepath.Ext(arg)),
		"{/}", filepath.Base(arg),
		"{.}", strings.TrimSuffix(arg, filepath.Ext(arg)),
		"{#}", strconv.Itoa(seq),
		"{}", arg,
	)
	out := make([]string, len(template))
	used := false
	for i, t := range template {
		out[i] = r.Replace(t)
		used = used || out[i] != t || strings.Contains(t, "{}")
	}
	if !used {
		out = append(out, arg)
	}
	return out
}

// RunJobs runs jobs with at most parallel at once and calls done for each as it
// finishes (from one goroutine at a time), in completion order, or in job order with
// keepOrder. With haltOnError no job starts after the first failure; jobs never started
// are not reported. ctx ending stops the running jobs (their results say canceled) and
// starts no more.
func RunJobs(ctx context.Context, jobs []Job, parallel int, keepOrder, haltOnError bool, done func(JobResult)) {
	if parallel < 1 {
		parallel = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		halted  bool
		next    int                   // keepOrder: the next Seq to report
		pending = map[int]JobResult{} // keepOrder: finished, waiting for their turn
	)
	report := func(r JobResult) {
		mu.Lock()
		defer mu.Unlock()
		if haltOnError && r.Failed() {
			halted = true
		}
		if !keepOrder {
			done(r)
			return
		}
		pending[r.Seq] = r
		for {
			p, ok := pending[next]
			if !ok {
				return
			}
			delete(pending, next)
			done(p)
			next++
		}
	}
	if len(jobs) > 0 {
		next = jobs[0].Seq
	}
	// Jobs start in order, so the started ones are always a prefix: ordered reporting
	// never waits for a job that will not run.
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		mu.Lock()
		stop := halted || ctx.Err() != nil
		mu.Unlock()
		if stop {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := j.Cmd.Run(ctx)
			report(JobResult{Job: j, Result: res, Err: err})
		})
	}
	wg.Wait()
}
