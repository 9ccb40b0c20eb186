package proc

import "sync"

// capture keeps the first and the last half of a stream up to a byte limit, so a huge
// output costs at most limit bytes and still shows how it began and how it ended.
//
// It is one buffer that grows (doubling) up to the limit; from then on its second half
// is a ring holding the tail. The final result is that buffer with the ring rotated in
// place, so a full capture never needs a second copy: memory stays within twice the
// limit even counting garbage from growth. It is safe for concurrent use (Status
// snapshots read while the pump writes).
//
// It deliberately does not implement io.ReaderFrom: that would let io.Copy bypass the
// limit.
type capture struct {
	mu    sync.Mutex
	limit int
	buf   []byte // len(buf) == limit once the stream reached it
	pos   int    // next write index in the ring buf[limit/2:], once full
	total int64
}

func newCapture(limit int64) *capture {
	if limit <= 0 {
		limit = DefaultCaptureLimit
	}
	return &capture{limit: int(min(limit, maxCaptureLimit))}
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writeLocked(p)
	c.mu.Unlock()
	return len(p), nil
}

func (c *capture) writeLocked(p []byte) {
	c.total += int64(len(p))
	if len(c.buf) < c.limit {
		n := min(c.limit-len(c.buf), len(p))
		c.grow(n)
		c.buf = append(c.buf, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 {
		return
	}
	ring := c.buf[c.limit/2:]
	if len(p) >= len(ring) {
		copy(ring, p[len(p)-len(ring):])
		c.pos = 0
		return
	}
	n := copy(ring[c.pos:], p)
	copy(ring, p[n:])
	c.pos = (c.pos + len(p)) % len(ring)
}

// grow makes room for n more bytes: doubling while the stream is small, then straight
// to the limit, so growth leaves at most a quarter of the limit as garbage.
func (c *capture) grow(n int) {
	need := len(c.buf) + n
	if need <= cap(c.buf) {
		return
	}
	size := max(need, 2*cap(c.buf), 4096)
	if size > c.limit/8 {
		size = c.limit
	}
	nb := make([]byte, len(c.buf), min(size, c.limit))
	copy(nb, c.buf)
	c.buf = nb
}

// snapshot returns a copy of what is kept, in stream order.
func (c *capture) snapshot() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]byte, len(c.buf))
	if len(c.buf) < c.limit {
		copy(out, c.buf)
		return out
	}
	half := c.limit / 2
	n := copy(out, c.buf[:half])
	n += copy(out[n:], c.buf[half+c.pos:])
	copy(out[n:], c.buf[half:half+c.pos])
	return out
}

// final returns what is kept in stream order, whether bytes were dropped, and the total
// seen. It rotates the ring in place and hands over the buffer: call it once, when the
// stream has ended.
func (c *capture) final() ([]byte, bool, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) == c.limit && c.pos > 0 {
		rotateLeft(c.buf[c.limit/2:], c.pos)
		c.pos = 0
	}
	out := c.buf
	c.buf = nil
	if out == nil {
		out = []byte{}
	}
	return out, c.total > int64(len(out)), c.total
}

// rotateLeft rotates b left by k in place (three reversals).
func rotateLeft(b []byte, k int) {
	reverse(b[:k])
	reverse(b[k:])
	reverse(b)
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}
