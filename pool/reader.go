package pool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"
)

// Who reads a worker's stdout.
//
// A round trip through a goroutine that reads the pipe and then wakes the task's
// waiter costs two wake-ups of a sleeping thread instead of one (~15-20 µs of a 50 µs
// round trip on a VM). So the answer is read by whoever needs it, holding the
// worker's read token:
//
//   - the task's waiter, when its task is on a worker and nobody else reads there:
//     Call (which sends its own task and reads the answer without waking anybody),
//     and any Future.Wait that finds the token free;
//   - otherwise the worker's reader goroutine, woken when a task is sent that no
//     waiter is known to read for (sent from the queue, or by Submit), and by every
//     holder that gives the token back while a task is in flight: a task in flight
//     always has a reader or a wake-up pending.
//
// Nobody reads a worker without a task: a frame it writes out of turn is read with
// its next task's answer, and fails that task (ErrProtocol, the worker replaced).
// Once the worker's process has ended, its slot takes the token for good and reads
// what is left (drain) before it decides how the task ended.

// errFrameTooLong is a frame over maxFrame.
var errFrameTooLong = fmt.Errorf("frame over %d bytes", maxFrame)

// stdout is a worker's stdout and its reading state.
type stdout struct {
	out    *os.File
	rd     *bufio.Reader // under tok
	part   []byte        // under tok: the start of a frame longer than rd's buffer
	tok    chan struct{} // holds the read token while nobody reads
	wakeup chan struct{} // asks the reader goroutine to read
	eof    bool          // under tok: the pipe ended
	closed chan struct{} // closed with out, once nobody reads again
	once   sync.Once
}

func (s *stdout) init(r *os.File) {
	s.out = r
	s.rd = bufio.NewReaderSize(r, 32<<10)
	s.tok = make(chan struct{}, 1) // empty: the worker's starter holds the token
	s.wakeup = make(chan struct{}, 1)
	s.closed = make(chan struct{})
}

// live hands the token of a worker that started to whoever reads next.
func (w *worker) live() {
	go w.readLoop()
	w.tok <- struct{}{}
}

// take takes the read token, if it is free, and clears a deadline left by an earlier
// holder.
func (w *worker) take() bool {
	select {
	case <-w.tok:
		_ = w.out.SetReadDeadline(time.Time{})
		return true
	default:
		return false
	}
}

// give gives the token back, and wakes the reader goroutine if a task is in flight
// (on a worker that is still running: an ended one is drained by its slot).
func (w *worker) give() {
	eof := w.eof
	w.tok <- struct{}{}
	if !eof && !w.gone() && w.busy() {
		w.wake()
	}
}

// wake asks the reader goroutine to read.
func (w *worker) wake() {
	select {
	case w.wakeup <- struct{}{}:
	default:
	}
}

// busy reports whether the worker has a task in flight.
func (w *worker) busy() bool {
	w.pool.mu.Lock()
	defer w.pool.mu.Unlock()
	return w.cur != nil
}

// readLoop is the worker's reader goroutine: it reads while a task is in flight that
// no waiter reads for.
func (w *worker) readLoop() {
	for {
		select {
		case <-w.wakeup:
		case <-w.closed:
			return
		}
		if !w.take() {
			continue // the holder wakes us when it gives the token back
		}
		w.readWhile(w.busy, runtime.Gosched) // let the waiter woken run before our next read
		w.give()
	}
}

// readFor reads f's answer, when nobody else reads on w: the waiter reads itself. It
// returns when f is finished, ctx ends, or reading must stop (the pipe ended, the
// worker is gone, or someone else holds the token).
func (w *worker) readFor(ctx context.Context, f *Future) {
	if !w.take() {
		return
	}
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, w.interrupt)
	}
	w.readWhile(func() bool { return !f.finished() && ctx.Err() == nil }, nil)
	stop()
	w.give()
}

// interrupt ends the holder's blocked read: it finds its reason to stop, or reads on.
func (w *worker) interrupt() { _ = w.out.SetReadDeadline(time.Now()) }

// readWhile reads frames and hands each to the pool while more() holds, the pipe has
// not ended and the worker's process has not. The caller holds the token.
func (w *worker) readWhile(more func() bool, after func()) {
	for !w.eof && more() && !w.gone() {
		line, err := w.readFrame()
		switch {
		case w.handOn(line, err):
			if after != nil {
				after()
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			_ = w.out.SetReadDeadline(time.Time{}) // more() and gone() say whether to go on
		default:
			w.eof = true // io.EOF, or the file closed
		}
	}
}

// handOn hands what readFrame gave to the pool: a frame, or the head of one too long.
// It reports false when the read gave neither.
func (w *worker) handOn(line []byte, err error) bool {
	if err != nil && !errors.Is(err, errFrameTooLong) {
		return false
	}
	w.pool.answer(w, string(line), err != nil)
	return true
}

// readFrame reads one frame: a line without its "\n" or "\r\n". A frame over maxFrame
// gives its first 200 bytes and errFrameTooLong. The line is valid until the next read.
// What came before an error is kept for the next call.
func (w *worker) readFrame() ([]byte, error) {
	for {
		chunk, err := w.rd.ReadSlice('\n')
		switch {
		case err == nil:
			if len(w.part) > 0 {
				chunk = append(w.part, chunk...)
				w.part = w.part[:0]
				if cap(chunk) > 1<<20 {
					w.part = nil // do not keep a large frame's buffer
				}
			}
			chunk = chunk[:len(chunk)-1]
			if n := len(chunk); n > 0 && chunk[n-1] == '\r' {
				chunk = chunk[:n-1]
			}
			return chunk, nil
		case errors.Is(err, bufio.ErrBufferFull):
			w.part = append(w.part, chunk...)
			if len(w.part) > maxFrame {
				h := w.part[:200]
				w.part = nil
				return h, errFrameTooLong
			}
		default:
			w.part = append(w.part, chunk...)
			if errors.Is(err, io.EOF) && len(w.part) > 0 {
				// The stream ended inside a frame: that unterminated line is the
				// last frame, as a line splitter gives it.
				line := w.part
				w.part = nil
				return line, nil
			}
			return nil, err
		}
	}
}

// startFrame reads a frame of the handshake, before the worker is live (its starter
// holds the token): errStartTimeout at deadline, ctx's cause if it ends first, io.EOF
// if the worker ended without one.
func (w *worker) startFrame(ctx context.Context, deadline time.Time) ([]byte, error) {
	_ = w.out.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, w.interrupt)
	line, err := w.readFrame()
	stop()
	_ = w.out.SetReadDeadline(time.Time{})
	switch {
	case err == nil || errors.Is(err, errFrameTooLong):
		return line, err
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errStartTimeout
	default:
		return nil, io.EOF
	}
}

// drainWait bounds the reading of what a worker whose process ended left in its
// stdout: a process of its tree that survived it may hold the pipe open.
const drainWait = 100 * time.Millisecond

// drain runs on the worker's slot once its process has ended: it takes the token for
// good (a holder blocked on the pipe gives up at drainWait), hands on the frames the
// worker wrote before it ended (an answer written just before a crash still counts),
// and closes the pipe.
func (w *worker) drain() {
	_ = w.out.SetReadDeadline(time.Now().Add(drainWait))
	<-w.tok
	_ = w.out.SetReadDeadline(time.Now().Add(drainWait))
	for !w.eof {
		w.eof = !w.handOn(w.readFrame())
	}
	w.closeStdout()
}

// closeStdout closes the pipe and ends the reader goroutine.
func (w *worker) closeStdout() {
	w.once.Do(func() {
		close(w.closed)
		w.out.Close()
	})
}

// abandon kills a worker that never went to work, or whose pool failed to start.
func (w *worker) abandon() {
	w.kill()
	w.closeStdout()
}
