package sandbox_test

import (
	"errors"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

func TestRuns(t *testing.T) {
	var r sandbox.Runs
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if !r.Shut() || r.Shut() {
		t.Fatal("Shut: want true the first time, false after")
	}
	if err := r.Start(); !errors.Is(err, sandbox.ErrClosed) {
		t.Fatalf("Start after Shut: %v, want ErrClosed", err)
	}
	waited := make(chan struct{})
	go func() { r.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while a run was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	r.Done()
	<-waited
}
