package proc

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/internal/lines"
)

// outStream carries one output stream of the child to its sinks. One goroutine (pump)
// reads the pipe and writes every sink in order, so sinks see bytes in the order the
// child wrote them and never concurrently.
type outStream struct {
	which     Stream
	r         *os.File // read end of the pipe; nil when the child writes straight to a file
	capture   *capture
	combined  *capture
	writers   []io.Writer
	split     *lines.Splitter
	now       time.Time // when the read being split returned
	recv      *recvQueue
	limit     atomic.Int64
	onLimit   func()
	limitOnce sync.Once
	opened    []*os.File // files opened for ToFile sinks, closed at the end

	total atomic.Int64
	done  chan struct{}
	eof   bool  // the pump saw the end of the pipe; read after done
	err   error // first sink error; read after done
}

var pumpBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// pipeGrowTo is the pipe size requested once a read fills the buffer: a child that
// writes in large blocks is 3x faster into a 1 MiB pipe than into the default 64 KiB.
const pipeGrowTo = 1 << 20

func (s *outStream) pump() {
	defer close(s.done)
	bp := pumpBufs.Get().(*[]byte)
	buf := *bp
	grown := false
	for {
		n, err := s.r.Read(buf)
		if n > 0 {
			s.deliver(buf[:n])
			if n == len(buf) && !grown {
				grown = true
				growPipe(s.r)
				buf = make([]byte, 256<<10)
			}
		}
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				s.eof = true
			case errors.Is(err, os.ErrDeadlineExceeded):
				// The drain bound cuts off a writer that keeps the pipe open, not the
				// bytes already in it: a pump scheduled late must still deliver them.
				s.eof = s.readBuffered(buf)
			case !errors.Is(err, os.ErrClosed) && s.err == nil:
				s.err = err
			}
			break
		}
	}
	if !grown {
		pumpBufs.Put(bp)
	}
	s.finish()
}

// readBuffered delivers what is already in the pipe without waiting, at most one full
// pipe, so a writer still alive cannot hold the pump. It reports whether it reached EOF.
func (s *outStream) readBuffered(buf []byte) (eof bool) {
	rc, err := s.r.SyscallConn()
	if err != nil {
		return false
	}
	_ = rc.Control(func(fd uintptr) {
		for budget := pipeGrowTo; budget > 0; {
			n, err := unix.Read(int(fd), buf) // non-blocking: the pipe is on the poller
			if err != nil {
				return // EAGAIN: empty, but still held open
			}
			if n == 0 {
				eof = true
				return
			}
			s.deliver(buf[:n])
			budget -= n
		}
	})
	return eof
}

func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeGrowTo) })
}

func (s *outStream) deliver(p []byte) {
	total := s.total.Add(int64(len(p)))
	if limit := s.limit.Load(); limit > 0 && total > limit {
		// Any byte past the limit trips it, including the first byte of a read that
		// begins exactly at the limit.
		s.limitOnce.Do(s.onLimit)
		before := total - int64(len(p))
		if before >= limit {
			return
		}
		p = p[:limit-before]
	}
	if s.capture != nil {
		s.capture.Write(p)
	}
	if s.combined != nil {
		s.combined.Write(p)
	}
	for i := 0; i < len(s.writers); i++ {
		if _, err := s.writers[i].Write(p); err != nil {
			if s.err == nil {
				s.err = err
			}
			s.writers = append(s.writers[:i], s.writers[i+1:]...)
			i--
		}
	}
	if s.split != nil {
		s.now = time.Now()
		s.split.Write(p)
	}
	if s.recv != nil {
		s.recv.push(p)
	}
}

func (s *outStream) finish() {
	if s.split != nil {
		s.now = time.Now()
		s.split.Flush()
	}
	if s.recv != nil {
		s.recv.close()
	}
	for _, f := range s.opened {
		if err := f.Close(); err != nil && s.err == nil {
			s.err = err
		}
	}
}

// lineFanout turns the Lines sinks of a stream into one splitter callback. Lines get
// the time their read returned (s.now): lines that arrived together share it, and the
// clock is read once per read, not once per line.
func (s *outStream) lineFanout(fns []func(Line)) func(lines.Line) {
	return func(l lines.Line) {
		line := Line{Stream: s.which, Text: string(l.Text), Kind: l.Kind, Time: s.now}
		for _, fn := range fns {
			fn(line)
		}
	}
}

// recvQueue buffers output for Recv. It never blocks the pump: what does not fit is
// counted as dropped (it is still captured and delivered to the other sinks).
type recvQueue struct {
	mu      sync.Mutex
	buf     []byte
	limit   int
	dropped int64
	eof     bool
	notify  chan struct{} // closed and replaced when data arrives or eof
}

func newRecvQueue(limit int) *recvQueue {
	return &recvQueue{limit: limit, notify: make(chan struct{})}
}

func (q *recvQueue) push(p []byte) {
	q.mu.Lock()
	room := q.limit - len(q.buf)
	if room < len(p) {
		q.dropped += int64(len(p) - max(room, 0))
		p = p[:max(room, 0)]
	}
	q.buf = append(q.buf, p...)
	q.wakeLocked()
	q.mu.Unlock()
}

func (q *recvQueue) close() {
	q.mu.Lock()
	q.eof = true
	q.wakeLocked()
	q.mu.Unlock()
}

func (q *recvQueue) wakeLocked() {
	close(q.notify)
	q.notify = make(chan struct{})
}

// take returns what is queued, the eof flag, and a channel that is closed when that
// changes.
func (q *recvQueue) take(max int) ([]byte, bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf) == 0 {
		return nil, q.eof, q.notify
	}
	n := len(q.buf)
	if max > 0 && n > max {
		n = max
	}
	out := make([]byte, n)
	copy(out, q.buf)
	q.buf = append(q.buf[:0], q.buf[n:]...)
	return out, q.eof && len(q.buf) == 0, q.notify
}
