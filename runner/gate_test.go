package runner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/runboxhq/runbox/runner"
)

func TestGate(t *testing.T) {
	g := runner.NewGate(2, 1)
	ctx := context.Background()
	var held []*runner.Ticket
	for range 3 {
		tk, err := g.Admit()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tk)
	}
	if _, err := g.Admit(); !errors.Is(err, runner.ErrOverloaded) {
		t.Fatalf("a fourth admission: %v, want ErrOverloaded", err)
	}
	for _, tk := range held[:2] {
		if err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if g.Running() != 2 || g.Waiting() != 1 {
		t.Fatalf("running %d waiting %d, want 2 and 1", g.Running(), g.Waiting())
	}
	// The third waits for a slot; its context ends first, and its place is free again.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := held[2].Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
	if g.Waiting() != 0 {
		t.Fatalf("waiting %d after the give-up, want 0", g.Waiting())
	}
	tk, err := g.Admit()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- tk.Wait(ctx) }()
	held[0].Done()
	held[0].Done() // twice is harmless
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	tk.Done()
	held[1].Done()
	if g.Running() != 0 || g.Waiting() != 0 {
		t.Fatalf("running %d waiting %d at the end", g.Running(), g.Waiting())
	}
}
