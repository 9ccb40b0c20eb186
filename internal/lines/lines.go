package lines

import (
	"bytes"
	"io"
)

// DefaultMaxLen is the longest line delivered whole; longer lines arrive in
// pieces of at most this many bytes.
const DefaultMaxLen = 64 << 10

// minBuf is the first allocation for a carried-over line, so that splitters
// which only ever see short lines stay small.
const minBuf = 512

// Kind says how a [Line] ended.
type Kind uint8

const (
	Full         Kind = iota // ended by "\n" or "\r\n"; the terminator is not in Text
	Update                   // ended by a lone "\r" (a progress update, as curl/rsync/pg_basebackup write); "\r" not in Text
	Partial                  // a piece of a line longer than the max length; more of the same line follows
	Unterminated             // the last bytes of the stream, with no terminator, delivered by Flush
)

// String is the kind's name in the event format (docs/events.md): "line", "update",
// "partial" or "eof".
func (k Kind) String() string {
	switch k {
	case Update:
		return "update"
	case Partial:
		return "partial"
	case Unterminated:
		return "eof"
	}
	return "line"
}

// Line is one line, or one piece of an over-long line.
type Line struct {
	Text []byte // valid only during the callback; the callee copies what it keeps
	Kind Kind
}

// Splitter is an [io.Writer] that calls a function for each line written to
// it. Not safe for concurrent use. The zero value is not usable; use [New].
type Splitter struct {
	emit   func(Line)
	maxLen int
	// pend is the start of a line still open at the end of the last Write;
	// len(pend) <= maxLen always.
	pend []byte
	// cr records a "\r" that ended the last Write: only the next byte can tell
	// an Update from half of a "\r\n".
	cr bool
}

var _ io.Writer = (*Splitter)(nil)

// New returns a Splitter that calls emit once per line, in order. Lines
// longer than maxLen bytes are delivered as [Partial] pieces; maxLen <= 0
// means [DefaultMaxLen].
func New(maxLen int, emit func(Line)) *Splitter {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	return &Splitter{emit: emit, maxLen: maxLen}
}

// Write splits p into lines, calling emit for each one that p completes. It
// never fails: it always returns len(p), nil.
func (s *Splitter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := len(p)
	if s.cr {
		s.cr = false
		if p[0] == '\n' {
			s.endLine(nil, Full)
			p = p[1:]
		} else {
			s.endLine(nil, Update)
		}
	}

	// nl and cr are the next "\n" and "\r" at or after off, or len(p) if
	// there is none. Each is searched for again only once off passes it, so
	// a Write is linear however its terminators are mixed.
	nl, cr := -1, -1
	for off := 0; off < len(p); {
		if nl < off {
			nl = indexFrom(p, off, '\n')
		}
		if cr < off {
			cr = indexFrom(p, off, '\r')
		}
		switch {
		case nl < cr:
			s.endLine(p[off:nl], Full)
			off = nl + 1
		case cr == len(p): // and so nl == len(p): no terminator left
			s.carry(p[off:])
			off = len(p)
		case cr+1 == len(p):
			s.carry(p[off:cr])
			s.cr = true
			off = len(p)
		case p[cr+1] == '\n':
			s.endLine(p[off:cr], Full)
			off = cr + 2
		default:
			s.endLine(p[off:cr], Update)
			off = cr + 1
		}
	}
	return n, nil
}

// Flush delivers what is pending as the end of the stream: a line ended by a
// final "\r" as an [Update], other bytes as [Unterminated]. It emits
// nothing when nothing is pending, so calling it twice is harmless.
func (s *Splitter) Flush() {
	switch {
	case s.cr:
		s.cr = false
		s.endLine(nil, Update)
	case len(s.pend) > 0:
		s.endLine(nil, Unterminated)
	}
}

// endLine emits the pending bytes followed by text as one line of kind k.
func (s *Splitter) endLine(text []byte, k Kind) {
	text = s.spill(text)
	if len(s.pend) > 0 {
		s.appendPending(text)
		s.emitPending(k)
		return
	}
	s.emit(Line{Text: text, Kind: k})
}

// carry keeps text, the start of a line whose end has not been written yet.
func (s *Splitter) carry(text []byte) {
	s.appendPending(s.spill(text))
}

// spill emits leading maxLen-byte pieces of the pending bytes followed by
// text as Partial, until at most maxLen bytes remain: those still in pend
// followed by the returned tail of text. The pieces are Partial whether or not
// text ends the line, because at least one byte of the line comes after
// each. Whole pieces of text are emitted without copying.
func (s *Splitter) spill(text []byte) []byte {
	if len(s.pend)+len(text) <= s.maxLen {
		return text
	}
	if len(s.pend) > 0 {
		room := s.maxLen - len(s.pend)
		s.appendPending(text[:room])
		s.emitPending(Partial)
		text = text[room:]
	}
	for len(text) > s.maxLen {
		s.emit(Line{Text: text[:s.maxLen], Kind: Partial})
		text = text[s.maxLen:]
	}
	return text
}

func (s *Splitter) emitPending(k Kind) {
	s.emit(Line{Text: s.pend, Kind: k})
	s.pend = s.pend[:0]
}

// appendPending grows pend by hand rather than with append, whose doubling
// could reserve up to twice maxLen.
func (s *Splitter) appendPending(b []byte) {
	if need := len(s.pend) + len(b); need > cap(s.pend) {
		c := min(max(2*cap(s.pend), need, minBuf), s.maxLen)
		grown := make([]byte, len(s.pend), c)
		copy(grown, s.pend)
		s.pend = grown
	}
	s.pend = append(s.pend, b...)
}

// indexFrom returns the index of the first c in p at or after off, or len(p).
func indexFrom(p []byte, off int, c byte) int {
	if i := bytes.IndexByte(p[off:], c); i >= 0 {
		return off + i
	}
	return len(p)
}
