package proc

import "sync"

// capture keeps the first and the last half of a stream up to a byte limit, so a huge
// output costs at most limit bytes and still shows how it began and how it ended.
// It is safe for concurrent use (Status snapshots read while the pump writes).
//
// It deliberately does not implement io.ReaderFrom: that would let io.Copy bypass
// the limit.
type capture struct {
	mu    sync.Mutex
	limit int
	head  []byte // first limit/2 bytes (or all of a short stream)
	tail  []byte // ring of the last limit-limit/2 bytes, allocated once head is full
	pos   int    // next write index in tail
	full  bool   // tail has wrapped
	total int64
}

func newCapture(limit int64) *capture {
	if limit <= 0 {
		limit = DefaultCaptureLimit
	}
	if limit > maxCaptureLimit {
		limit = maxCaptureLimit
	}
	return &capture{limit: int(limit)}
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writeLocked(p)
	c.mu.Unlock()
	return len(p), nil
}

func (c *capture) writeLocked(p []byte) {
	c.total += int64(len(p))
	headCap := c.limit / 2
	if len(c.head) < headCap {
		n := min(headCap-len(c.head), len(p))
		c.head = append(c.head, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 {
		return
	}
	tailCap := c.limit - headCap
	if c.tail == nil {
		c.tail = make([]byte, tailCap)
	}
	if len(p) >= tailCap {
		copy(c.tail, p[len(p)-tailCap:])
		c.pos, c.full = 0, true
		return
	}
	n := copy(c.tail[c.pos:], p)
	if n < len(p) {
		copy(c.tail, p[n:])
		c.full = true
	}
	c.pos = (c.pos + len(p)) % tailCap
	if c.pos == 0 {
		c.full = true
	}
}

// bytes returns a copy of what is kept and whether anything was dropped.
func (c *capture) bytes() ([]byte, bool, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var tailLen int
	if c.full {
		tailLen = len(c.tail)
	} else {
		tailLen = c.pos
	}
	out := make([]byte, 0, len(c.head)+tailLen)
	out = append(out, c.head...)
	if c.full {
		out = append(out, c.tail[c.pos:]...)
	}
	out = append(out, c.tail[:c.pos]...)
	return out, c.total > int64(len(out)), c.total
}
