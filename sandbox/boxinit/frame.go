package boxinit

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// A container's init writes everything on its stdout as frames: a type byte, the
// payload's length as a big-endian uint32, the payload. The program's output reaches
// the init through pipes, so nothing the program writes can pass for a frame.
const (
	FrameStdout byte = 'o' // bytes the program wrote to stdout
	FrameStderr byte = 'e' // bytes the program wrote to stderr
	FrameStatus byte = 's' // the init's Status, as JSON; the last frame
	// MaxFrame bounds a frame's payload: the host refuses larger ones.
	MaxFrame    = 64 << 10
	frameHeader = 5
)

// WriteFrame writes one frame of type typ carrying p, which is at most MaxFrame bytes.
func WriteFrame(w io.Writer, typ byte, p []byte) error {
	if len(p) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(p), MaxFrame)
	}
	var h [frameHeader]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// FrameReader reads the frames a container's init writes.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), buf: make([]byte, MaxFrame)}
}

// Next returns the next frame. The payload is valid until the next call. At the end of
// the stream it returns io.EOF; a stream cut inside a frame, an unknown type or an
// oversized frame is an error.
func (fr *FrameReader) Next() (typ byte, payload []byte, err error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("init's output cut inside a frame header: %w", err)
		}
		return 0, nil, err
	}
	typ, n := h[0], binary.BigEndian.Uint32(h[1:])
	switch {
	case typ != FrameStdout && typ != FrameStderr && typ != FrameStatus:
		return 0, nil, fmt.Errorf("init's output is not framed (a frame of type %q)", typ)
	case n > MaxFrame:
		return 0, nil, fmt.Errorf("init's frame of %d bytes exceeds %d", n, MaxFrame)
	}
	if _, err := io.ReadFull(fr.r, fr.buf[:n]); err != nil {
		return 0, nil, fmt.Errorf("init's output cut inside a frame: %w", err)
	}
	return typ, fr.buf[:n], nil
}
