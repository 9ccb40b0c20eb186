package proc

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// inputFeed writes the child's stdin from a goroutine: either copying a reader, or
// (interactive) draining a bounded buffer filled by Send, so no caller ever blocks on
// the pipe.
type inputFeed struct {
	w     *os.File
	src   io.Reader // copy mode
	limit int       // interactive mode: buffer bound

	mu       sync.Mutex
	buf      []byte
	closing  bool          // CloseInput was called: close w once buf is written
	gone     bool          // the pipe is closed or broken: nothing more is accepted
	wake     chan struct{} // closed and replaced when buf, closing or gone change
	writeErr error
	readErr  error // the source reader failed (copy mode)
}

func newInputFeed(w *os.File, src io.Reader, limit int) *inputFeed {
	return &inputFeed{w: w, src: src, limit: limit, wake: make(chan struct{})}
}

func (f *inputFeed) run() {
	if f.src != nil {
		_, err := io.Copy(f.w, f.src)
		if err != nil && !isBrokenPipe(err) {
			var pe *os.PathError
			if !errors.As(err, &pe) { // write errors come as *PathError; the rest is the reader's
				f.mu.Lock()
				f.readErr = err
				f.mu.Unlock()
			}
		}
		f.w.Close()
		return
	}
	for {
		f.mu.Lock()
		for len(f.buf) == 0 && !f.closing && !f.gone {
			wake := f.wake
			f.mu.Unlock()
			<-wake
			f.mu.Lock()
		}
		if f.gone || (len(f.buf) == 0 && f.closing) {
			f.goneLocked(nil)
			f.mu.Unlock()
			f.w.Close()
			return
		}
		chunk := f.buf
		f.buf = nil
		f.mu.Unlock()

		_, err := f.w.Write(chunk)
		f.mu.Lock()
		if err != nil {
			f.goneLocked(err)
		}
		f.wakeLocked()
		f.mu.Unlock()
	}
}

func (f *inputFeed) wakeLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *inputFeed) goneLocked(err error) {
	if !f.gone {
		f.gone = true
		if err != nil && !isBrokenPipe(err) && !errors.Is(err, os.ErrClosed) {
			f.writeErr = err
		}
		f.buf = nil
		f.wakeLocked()
	}
}

// abandon is called when the process has exited: whatever is unwritten is dropped.
func (f *inputFeed) abandon() {
	f.mu.Lock()
	f.goneLocked(nil)
	f.mu.Unlock()
	if f.src != nil {
		// Unblocks a copy stuck in Write; a copy stuck in the source's Read cannot be
		// interrupted and is left to finish on its own.
		f.w.Close()
	}
}

func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }

func (p *Process) feed() (*inputFeed, error) {
	if p.input == nil || p.input.src != nil {
		return nil, ErrNotInteractive
	}
	return p.input, nil
}

// Send queues b for the child's stdin and returns at once. It accepts what fits in the
// buffer (DefaultSendLimit) and returns ErrSendFull with the count accepted when that is
// less than len(b), or ErrInputClosed when the input is closed or the child is gone.
func (p *Process) Send(b []byte) (int, error) {
	f, err := p.feed()
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone || f.closing {
		return 0, ErrInputClosed
	}
	n := min(len(b), f.limit-len(f.buf))
	f.buf = append(f.buf, b[:n]...)
	if n > 0 {
		f.wakeLocked()
	}
	if n < len(b) {
		return n, ErrSendFull
	}
	return n, nil
}

// Write sends all of b, waiting for buffer space as the child reads. It never waits on
// the child's output, so a child that writes much before reading cannot deadlock it.
func (p *Process) Write(b []byte) (int, error) {
	total := 0
	for {
		n, err := p.Send(b[total:])
		total += n
		if !errors.Is(err, ErrSendFull) {
			return total, err
		}
		f := p.input
		f.mu.Lock()
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-p.done:
			return total, ErrInputClosed
		}
	}
}

// CloseInput closes the child's stdin once what was sent has been written.
func (p *Process) CloseInput() error {
	f, err := p.feed()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.closing = true
	f.wakeLocked()
	f.mu.Unlock()
	return nil
}

// Close closes the input (io.Closer); the process keeps running.
func (p *Process) Close() error { return p.CloseInput() }

// Recv returns the stdout received since the last call, possibly nothing, without
// blocking. It returns io.EOF once stdout is closed and everything has been returned.
func (p *Process) Recv() ([]byte, error) { return p.recv(p.out) }

// RecvErr is Recv for stderr.
func (p *Process) RecvErr() ([]byte, error) { return p.recv(p.errOut) }

func (p *Process) recv(s *outStream) ([]byte, error) {
	if s == nil || s.recv == nil {
		return nil, ErrNotInteractive
	}
	b, eof, _ := s.recv.take(0)
	if eof && len(b) == 0 {
		return nil, io.EOF
	}
	return b, nil
}

// RecvFor gathers stdout for up to d and returns it; it returns early when stdout
// closes (with io.EOF once nothing is left) or ctx ends.
func (p *Process) RecvFor(ctx context.Context, d time.Duration) ([]byte, error) {
	return p.recvFor(ctx, p.out, d)
}

// RecvErrFor is RecvFor for stderr.
func (p *Process) RecvErrFor(ctx context.Context, d time.Duration) ([]byte, error) {
	return p.recvFor(ctx, p.errOut, d)
}

func (p *Process) recvFor(ctx context.Context, s *outStream, d time.Duration) ([]byte, error) {
	if s == nil || s.recv == nil {
		return nil, ErrNotInteractive
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	var out []byte
	for {
		b, eof, wake := s.recv.take(0)
		out = append(out, b...)
		if eof {
			if len(out) == 0 {
				return nil, io.EOF
			}
			return out, nil
		}
		select {
		case <-wake:
		case <-timer.C:
			b, _, _ := s.recv.take(0)
			return append(out, b...), nil
		case <-ctx.Done():
			return out, context.Cause(ctx)
		}
	}
}

// Read reads stdout, blocking until some is available or stdout closes (io.EOF).
// With Write and Close it makes the process an io.ReadWriteCloser.
func (p *Process) Read(b []byte) (int, error) {
	s := p.out
	if s == nil || s.recv == nil {
		return 0, ErrNotInteractive
	}
	if len(b) == 0 {
		return 0, nil
	}
	for {
		got, eof, wake := s.recv.take(len(b))
		if len(got) > 0 {
			return copy(b, got), nil
		}
		if eof {
			return 0, io.EOF
		}
		<-wake
	}
}

// Dropped reports how many bytes of stdout and stderr did not fit the Recv queues.
func (p *Process) Dropped() (stdout, stderr int64) {
	for i, s := range []*outStream{p.out, p.errOut} {
		if s == nil || s.recv == nil {
			continue
		}
		s.recv.mu.Lock()
		d := s.recv.dropped
		s.recv.mu.Unlock()
		if i == 0 {
			stdout = d
		} else {
			stderr = d
		}
	}
	return
}
