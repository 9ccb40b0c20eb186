package runner_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/runner"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

func nativeBackend(t *testing.T) sandbox.Backend {
	t.Helper()
	b, err := native.New(context.Background(), native.Config{})
	if err != nil {
		t.Skipf("native backend: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestTasksRunInOrderWithinTheBound(t *testing.T) {
	b := nativeBackend(t)
	sleep := sandbox.Spec{Command: []string{"/bin/sleep", "0.2"}}
	tasks := []runner.Task{
		{Name: "a", Spec: sleep},
		{Name: "unreadable", Err: errors.New("permission denied")},
		{Name: "b", Spec: sleep},
		{Name: "c", Spec: sandbox.Spec{Command: []string{"/bin/sh", "-c", "exit 3"}}},
	}
	var mu sync.Mutex
	running, most := 0, 0
	ts := &runner.Tasks{Backend: b, Parallel: 2,
		Started: func(int, runner.Task) {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
		},
		Finished: func(r runner.TaskResult) {
			mu.Lock()
			if r.Err == nil || r.Result != nil {
				running--
			}
			mu.Unlock()
		},
	}
	results := ts.Run(context.Background(), tasks)
	if len(results) != 4 || most > 2 {
		t.Fatalf("%d results, %d at once; want 4, at most 2", len(results), most)
	}
	for i, want := range []struct {
		name   string
		failed bool
	}{{"a", false}, {"unreadable", true}, {"b", false}, {"c", true}} {
		r := results[i]
		if r.Name != want.name || r.Index != i || r.Failed() != want.failed {
			t.Errorf("result %d: %s failed=%v err=%v; want %s failed=%v", i, r.Name, r.Failed(), r.Err, want.name, want.failed)
		}
	}
	if r := results[3].Result; r == nil || r.Status != sandbox.StatusRuntimeError || *r.ExitCode != 3 {
		t.Errorf("c: %+v", r)
	}
}

func TestTasksCanceled(t *testing.T) {
	b := nativeBackend(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	long := sandbox.Spec{Command: []string{"/bin/sleep", "30"}}
	start := time.Now()
	results := (&runner.Tasks{Backend: b, Parallel: 1}).Run(ctx, []runner.Task{{Name: "1", Spec: long}, {Name: "2", Spec: long}})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v after the context ended", took)
	}
	if r := results[0].Result; r == nil || r.Status != sandbox.StatusTimeout {
		t.Errorf("the running task: %+v, %v; want timeout", r, results[0].Err)
	}
	if !errors.Is(results[1].Err, context.DeadlineExceeded) || results[1].Result != nil {
		t.Errorf("the task never started: %+v, %v; want the context's error", results[1].Result, results[1].Err)
	}
}
