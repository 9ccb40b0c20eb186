package logfile

import (
	"strings"
	"time"
)

// tsLayout is the record timestamp up to and including the seconds' dot; the
// milliseconds and the "Z" are appended by hand.
const tsLayout = "2006-01-02T15:04:05."

// stamper formats record timestamps. Formatting a whole time.Time for every
// line costs more than the rest of the record, so the part up to the seconds
// is kept for the second it belongs to: consecutive lines almost always
// share it.
type stamper struct {
	sec    int64  // Unix second that prefix is for
	prefix []byte // tsLayout applied to sec in UTC; empty until first use
}

// stamp returns the cached prefix for t and t's millisecond.
func (s *stamper) stamp(t time.Time) (prefix []byte, ms int) {
	if sec := t.Unix(); len(s.prefix) == 0 || sec != s.sec {
		s.sec = sec
		s.prefix = t.UTC().AppendFormat(s.prefix[:0], tsLayout)
	}
	return s.prefix, t.Nanosecond() / 1e6
}

// recordLen is the length of the record that appendRecord writes for a
// timestamp prefix of length plen; sc and tc count the bytes of stream and
// text that need an escape.
func recordLen(plen int, stream string, sc int, text string, tc int) int {
	return plen + len("000Z ") + len(stream) + sc + len(" | ") + len(text) + tc + len("\n")
}

// appendRecord appends the record "<prefix><ms>Z <stream> | <text>\n" with
// stream and text escaped; sc and tc are their counts of bytes to escape.
func appendRecord(b, prefix []byte, ms int, stream string, sc int, text string, tc int) []byte {
	b = append(b, prefix...)
	b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', ' ')
	b = appendEscaped(b, stream, sc)
	b = append(b, " | "...)
	b = appendEscaped(b, text, tc)
	return append(b, '\n')
}

// countEscapes reports how many bytes of s appendEscaped must escape. Output
// lines rarely contain any, and three vectorised scans beat one byte loop.
func countEscapes(s string) int {
	if strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\\') < 0 {
		return 0
	}
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n', '\r', '\\':
			n++
		}
	}
	return n
}

// appendEscaped appends s with "\\", "\n" and "\r" written as two-byte
// escapes; n is countEscapes(s).
func appendEscaped(b []byte, s string, n int) []byte {
	if n == 0 {
		return append(b, s...)
	}
	for len(s) > 0 {
		i := strings.IndexAny(s, "\\\n\r")
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		switch s[i] {
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', '\\')
		}
		s = s[i+1:]
	}
	return b
}
