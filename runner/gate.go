package runner

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrOverloaded is returned by Gate.Admit when every run slot is taken and the queue
// is full: the caller should come back later, not wait.
var ErrOverloaded = errors.New("runner: overloaded: every run slot is busy and the queue is full")

// Gate admits runs: at most Running at once, and at most Queue more waiting for a
// slot. Admission never blocks; waiting for a slot does, until the slot or the end of
// the caller's context. Safe for concurrent use.
type Gate struct {
	tickets chan struct{} // running + waiting
	slots   chan struct{} // running
	waiting atomic.Int64
}

// NewGate returns a gate of running slots and queue places (each at least 1 and 0).
func NewGate(running, queue int) *Gate {
	running = max(running, 1)
	queue = max(queue, 0)
	return &Gate{tickets: make(chan struct{}, running+queue), slots: make(chan struct{}, running)}
}

// Ticket is an admitted run: Wait for its slot, then Done.
type Ticket struct {
	g       *Gate
	running bool
	done    bool
}

// Admit takes a place in the queue at once, or fails with ErrOverloaded.
func (g *Gate) Admit() (*Ticket, error) {
	select {
	case g.tickets <- struct{}{}:
		g.waiting.Add(1)
		return &Ticket{g: g}, nil
	default:
		return nil, ErrOverloaded
	}
}

// Wait waits for a run slot, or for ctx to end (the ticket is then given back).
func (t *Ticket) Wait(ctx context.Context) error {
	select {
	case t.g.slots <- struct{}{}:
		t.g.waiting.Add(-1)
		t.running = true
		return nil
	case <-ctx.Done():
		t.Done()
		return ctx.Err()
	}
}

// Done gives back the ticket and its slot. It may be called more than once.
func (t *Ticket) Done() {
	if t.done {
		return
	}
	t.done = true
	if t.running {
		<-t.g.slots
	} else {
		t.g.waiting.Add(-1)
	}
	<-t.g.tickets
}

// Running is how many admitted runs hold a slot.
func (g *Gate) Running() int { return len(g.slots) }

// Waiting is how many admitted runs wait for a slot.
func (g *Gate) Waiting() int { return int(g.waiting.Load()) }

// Capacity returns the gate's slots and queue places.
func (g *Gate) Capacity() (running, queue int) { return cap(g.slots), cap(g.tickets) - cap(g.slots) }
