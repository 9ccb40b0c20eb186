package sandbox

import "sync"

// Tap hands the bytes of one output stream to the function a run sets, up to the
// run's cap: backends put one on each stream of a box, made before the box knows
// whether its run is streamed. The zero value is not usable; see NewTap.
type Tap struct {
	stream string
	mu     sync.Mutex
	fn     func(stream string, p []byte)
	left   int64
}

// NewTap returns a tap for stream ("stdout" or "stderr") that passes nothing yet.
func NewTap(stream string) *Tap { return &Tap{stream: stream} }

// Set makes the tap pass up to limit bytes to fn (nil: none).
func (t *Tap) Set(fn func(stream string, p []byte), limit int64) {
	t.mu.Lock()
	t.fn, t.left = fn, limit
	t.mu.Unlock()
}

// Write passes what is left of the cap of p to the function; it never fails.
func (t *Tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fn != nil && t.left > 0 {
		n := min(int64(len(p)), t.left)
		t.left -= n
		t.fn(t.stream, p[:n])
	}
	return len(p), nil
}
