package runner_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/runner"
)

func TestExpand(t *testing.T) {
	tests := []struct {
		tmpl []string
		arg  string
		want string
	}{
		{[]string{"gzip", "-k", "{}"}, "data/a.log", "gzip -k data/a.log"},
		{[]string{"convert", "{}", "{.}.jpg"}, "x/pic.png", "convert x/pic.png x/pic.jpg"},
		{[]string{"echo", "{/}", "{//}", "{/.}", "{#}"}, "/a/b/c.tar.gz", "echo c.tar.gz /a/b c.tar 7"},
		{[]string{"echo", "item"}, "one", "echo item one"},
		{[]string{"echo", "{}{}"}, "x", "echo xx"},
	}
	for _, tt := range tests {
		if got := strings.Join(runner.Expand(tt.tmpl, tt.arg, 7), " "); got != tt.want {
			t.Errorf("Expand(%v, %q) = %q, want %q", tt.tmpl, tt.arg, got, tt.want)
		}
	}
}

func TestRunJobsBoundsParallelismAndKeepsOrder(t *testing.T) {
	var jobs []runner.Job
	for i := range 12 {
		// Later jobs finish first, so keep-order has to hold results back.
		jobs = append(jobs, runner.Job{Seq: i + 1, Cmd: proc.Command("/bin/sleep", []string{"0.06", "0.04", "0.02", "0"}[i%4])})
	}
	var order []int
	start := time.Now()
	runner.RunJobs(context.Background(), jobs, 3, true, false, func(r runner.JobResult) {
		order = append(order, r.Seq)
		if r.Failed() {
			t.Errorf("job %d failed: %v %v", r.Seq, r.Err, r.Result.Status)
		}
	})
	if !slices.IsSorted(order) || len(order) != 12 {
		t.Errorf("order %v", order)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("12 jobs of up to 60ms with 3 at once took %v: not bounded", d)
	}
}

func TestRunJobsHaltAndCancel(t *testing.T) {
	var jobs []runner.Job
	for i := range 6 {
		code := "0"
		if i == 1 {
			code = "1"
		}
		jobs = append(jobs, runner.Job{Seq: i + 1, Cmd: proc.Command("/bin/sh", "-c", "exit "+code)})
	}
	var got []int
	runner.RunJobs(context.Background(), jobs, 1, false, true, func(r runner.JobResult) { got = append(got, r.Seq) })
	if !slices.Equal(got, []int{1, 2}) {
		t.Errorf("with halt-on-error ran %v, want [1 2]", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	var statuses []proc.Status
	start := time.Now()
	runner.RunJobs(ctx, []runner.Job{{Seq: 1, Cmd: proc.Command("/bin/sleep", "182")}, {Seq: 2, Cmd: proc.Command("/bin/sleep", "182")}}, 1, false, false,
		func(r runner.JobResult) { statuses = append(statuses, r.Result.Status) })
	if time.Since(start) > 10*time.Second || !slices.Equal(statuses, []proc.Status{proc.StatusCanceled}) {
		t.Errorf("cancel: %v after %v", statuses, time.Since(start))
	}
}
