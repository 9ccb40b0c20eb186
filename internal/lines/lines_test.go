package lines

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// out is a delivered Line with its Text copied, as a callee must.
type out struct {
	text string
	kind Kind
}

func (o out) String() string {
	names := [...]string{"Full", "Update", "Partial", "Unterminated"}
	if int(o.kind) >= len(names) {
		return fmt.Sprintf("Kind(%d) %q", o.kind, o.text)
	}
	return fmt.Sprintf("%s %q", names[o.kind], o.text)
}

func full(s string) out         { return out{s, Full} }
func update(s string) out       { return out{s, Update} }
func partial(s string) out      { return out{s, Partial} }
func unterminated(s string) out { return out{s, Unterminated} }

// run writes chunks to a new Splitter, flushes it twice, and returns what it
// emitted. It fails the test if the Splitter ever holds more than maxLen
// bytes or the second Flush emits anything.
func run(t testing.TB, maxLen int, chunks [][]byte) []out {
	t.Helper()
	var got []out
	s := New(maxLen, func(l Line) { got = append(got, out{string(l.Text), l.Kind}) })
	for _, c := range chunks {
		if n, err := s.Write(c); n != len(c) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
		}
		if cap(s.pend) > s.maxLen {
			t.Fatalf("after Write(%q): holding %d bytes (cap), max %d", c, cap(s.pend), s.maxLen)
		}
	}
	s.Flush()
	n := len(got)
	s.Flush()
	if len(got) != n {
		t.Fatalf("second Flush emitted %v", got[n:])
	}
	return got
}

// chunkings returns input written whole, split in two at every offset
// (including the empty ends), and byte by byte.
func chunkings(input []byte) map[string][][]byte {
	m := map[string][][]byte{"whole": {input}}
	for i := 0; i <= len(input); i++ {
		m[fmt.Sprintf("split at %d", i)] = [][]byte{input[:i], input[i:]}
	}
	m["byte by byte"] = bytewise(input)
	return m
}

func bytewise(input []byte) [][]byte {
	chunks := make([][]byte, len(input))
	for i := range input {
		chunks[i] = input[i : i+1]
	}
	return chunks
}

// checkAllChunkings feeds input chunked every way chunkings knows and checks
// each yields want.
func checkAllChunkings(t *testing.T, maxLen int, input string, want []out) {
	t.Helper()
	for name, chunks := range chunkings([]byte(input)) {
		if got := run(t, maxLen, chunks); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}
}

// checkLines reports whether outs is exactly what the Splitter must emit for
// input: consuming input line by line, each Text must appear next in input,
// followed by the terminator its Kind implies, so that the texts and
// terminators rebuild the input. Because no Text may contain "\r" or "\n",
// the input alone decides whether a Full line ended in "\n" or "\r\n".
func checkLines(input []byte, maxLen int, outs []out) error {
	rest := input
	for i, o := range outs {
		if len(o.text) > maxLen {
			return fmt.Errorf("line %d: %v: longer than %d", i, o, maxLen)
		}
		if strings.ContainsAny(o.text, "\r\n") {
			return fmt.Errorf("line %d: %v: contains a terminator", i, o)
		}
		if !bytes.HasPrefix(rest, []byte(o.text)) {
			return fmt.Errorf("line %d: %v: input continues %q", i, o, rest)
		}
		rest = rest[len(o.text):]
		switch o.kind {
		case Full:
			switch {
			case bytes.HasPrefix(rest, []byte("\r\n")):
				rest = rest[2:]
			case bytes.HasPrefix(rest, []byte("\n")):
				rest = rest[1:]
			default:
				return fmt.Errorf("line %d: %v: followed by %q, not a newline", i, o, rest)
			}
		case Update:
			if !bytes.HasPrefix(rest, []byte("\r")) || bytes.HasPrefix(rest, []byte("\r\n")) {
				return fmt.Errorf("line %d: %v: followed by %q, not a lone \\r", i, o, rest)
			}
			rest = rest[1:]
		case Partial:
			if len(o.text) != maxLen {
				return fmt.Errorf("line %d: %v: Partial shorter than %d", i, o, maxLen)
			}
			if len(rest) == 0 || rest[0] == '\r' || rest[0] == '\n' {
				return fmt.Errorf("line %d: %v: followed by %q, not more of the line", i, o, rest)
			}
		case Unterminated:
			if i != len(outs)-1 || len(rest) != 0 || o.text == "" {
				return fmt.Errorf("line %d of %d: %v: want a non-empty last line at the end of input", i, len(outs), o)
			}
		default:
			return fmt.Errorf("line %d: %v: unknown kind", i, o)
		}
	}
	if len(rest) > 0 {
		return fmt.Errorf("%q never delivered", rest)
	}
	return nil
}

const tmax = 8 // maxLen for the table, small so long lines stay readable

var splitterTests = []struct {
	name  string
	input string
	want  []out
}{
	{"empty input", "", nil},
	{"empty line", "\n", []out{full("")}},
	{"empty lines", "\n\n", []out{full(""), full("")}},
	{"several lines in one write", "a\nbb\nccc\n", []out{full("a"), full("bb"), full("ccc")}},
	{"CRLF lines of different lengths", "a\r\nbbbb\r\n\r\ncc\r\n",
		[]out{full("a"), full("bbbb"), full(""), full("cc")}},
	{"LF and CRLF mixed", "one\r\ntwo\nthree\r\n", []out{full("one"), full("two"), full("three")}},
	{"only CRLF", "\r\n", []out{full("")}},
	{"progress updates", "10%\r20%\r30%\n", []out{update("10%"), update("20%"), full("30%")}},
	{"updates then CRLF", "a\rb\rc\r\n", []out{update("a"), update("b"), full("c")}},
	{"progress redrawn from line start", "\r10%\r20%\rdone\n",
		[]out{update(""), update("10%"), update("20%"), full("done")}},
	{"only CR", "\r", []out{update("")}},
	{"two CRs", "\r\r", []out{update(""), update("")}},
	{"CR then CRLF", "\r\r\n", []out{update(""), full("")}},
	{"LF then CR", "\n\r", []out{full(""), update("")}},
	{"LF CR LF", "\n\r\n", []out{full(""), full("")}},
	{"CR LF LF", "\r\n\n", []out{full(""), full("")}},
	{"trailing CR at EOF", "done\n50%\r", []out{full("done"), update("50%")}},
	{"final line without newline", "a\nlast", []out{full("a"), unterminated("last")}},
	{"only text", "abc", []out{unterminated("abc")}},
	{"CR then text at EOF", "a\r\rb", []out{update("a"), update(""), unterminated("b")}},
	{"NUL and high bytes pass through", "\x00\xff\n\x00", []out{full("\x00\xff"), unterminated("\x00")}},

	{"exactly max", "12345678\n", []out{full("12345678")}},
	{"exactly max, CRLF", "12345678\r\nab\r\n", []out{full("12345678"), full("ab")}},
	{"exactly max, lone CR", "12345678\rab\n", []out{update("12345678"), full("ab")}},
	{"exactly max at EOF", "12345678", []out{unterminated("12345678")}},
	{"exactly max, CR at EOF", "12345678\r", []out{update("12345678")}},
	{"max+1", "123456789\n", []out{partial("12345678"), full("9")}},
	{"max+1, CRLF", "123456789\r\n", []out{partial("12345678"), full("9")}},
	{"max+1 at EOF", "123456789", []out{partial("12345678"), unterminated("9")}},
	{"max+1, CR at EOF", "123456789\r", []out{partial("12345678"), update("9")}},
	{"twice max", "abcdefghABCDEFGH\n", []out{partial("abcdefgh"), full("ABCDEFGH")}},
	{"twice max, CRLF", "abcdefghABCDEFGH\r\nx\n",
		[]out{partial("abcdefgh"), full("ABCDEFGH"), full("x")}},
	{"3*max+5", strings.Repeat("abcdefgh", 3) + "12345\n",
		[]out{partial("abcdefgh"), partial("abcdefgh"), partial("abcdefgh"), full("12345")}},
	{"3*max+5, CRLF", strings.Repeat("abcdefgh", 3) + "12345\r\n",
		[]out{partial("abcdefgh"), partial("abcdefgh"), partial("abcdefgh"), full("12345")}},
	{"3*max+5 update", strings.Repeat("abcdefgh", 3) + "12345\rz\n",
		[]out{partial("abcdefgh"), partial("abcdefgh"), partial("abcdefgh"), update("12345"), full("z")}},
	{"3*max+5 at EOF", strings.Repeat("abcdefgh", 3) + "12345",
		[]out{partial("abcdefgh"), partial("abcdefgh"), partial("abcdefgh"), unterminated("12345")}},
	{"long lines between short ones", "a\r\n123456789abc\r\n\r\nb\n",
		[]out{full("a"), partial("12345678"), full("9abc"), full(""), full("b")}},
}

func TestSplitter(t *testing.T) {
	for _, tt := range splitterTests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkLines([]byte(tt.input), tmax, tt.want); err != nil {
				t.Fatalf("bad test case: %v", err)
			}
			checkAllChunkings(t, tmax, tt.input, tt.want)
		})
	}
}

// TestSplitterChunks spells out boundaries that matter, including ones the
// every-offset split in TestSplitter already covers, so that a failure names
// the case.
func TestSplitterChunks(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []out
	}{
		{"line split across writes", []string{"hel", "lo\nwor", "ld\n"}, []out{full("hello"), full("world")}},
		{"CRLF split across writes", []string{"a\r", "\nb\r", "\n"}, []out{full("a"), full("b")}},
		{"CRLF split by an empty write", []string{"a\r", "", "\n"}, []out{full("a")}},
		{"CR ends a write, text follows", []string{"10%\r", "20%\r", "30%\n"},
			[]out{update("10%"), update("20%"), full("30%")}},
		{"CR ends a write, CR follows", []string{"a\r", "\r", "\n"}, []out{update("a"), full("")}},
		{"CR ends the stream", []string{"a\r"}, []out{update("a")}},
		{"max in one write, CRLF split", []string{"12345678\r", "\n"}, []out{full("12345678")}},
		{"max across writes, CR split", []string{"1234", "5678\r", "x"},
			[]out{update("12345678"), unterminated("x")}},
		{"long line over many writes", []string{"123", "456", "789", "abc", "defgh", "ijk\n"},
			[]out{partial("12345678"), partial("9abcdefg"), full("hijk")}},
		{"long line in one write after a carried start", []string{"12", "3456789abcdefghijklmnopq\r\n"},
			[]out{partial("12345678"), partial("9abcdefg"), partial("hijklmno"), full("pq")}},
		{"many empty writes", []string{"", "", "a", "", "\n", ""}, []out{full("a")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var chunks [][]byte
			for _, c := range tt.chunks {
				chunks = append(chunks, []byte(c))
			}
			if got := run(t, tmax, chunks); !slices.Equal(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestDefaultMaxLen(t *testing.T) {
	line := strings.Repeat("x", DefaultMaxLen)
	input := []byte(line + "\r\n" + line + "y\n" + line)
	want := []out{full(line), partial(line), full("y"), unterminated(line)}
	for _, maxLen := range []int{0, -1} {
		for name, chunks := range map[string][][]byte{
			"whole":         {input},
			"split at 1000": {input[:1000], input[1000:]},
			"byte by byte":  bytewise(input),
		} {
			if got := run(t, maxLen, chunks); !slices.Equal(got, want) {
				t.Errorf("New(%d), %s: got %d lines, kinds %v; want %d, %v",
					maxLen, name, len(got), kinds(got), len(want), kinds(want))
			}
		}
	}
}

func kinds(outs []out) []Kind {
	var k []Kind
	for _, o := range outs {
		k = append(k, o.kind)
	}
	return k
}

// TestWriteAliasesCompleteLines checks the fast path: lines wholly inside one
// Write are slices of it, while the open tail of a line is copied, so the
// writer may reuse its buffer after Write returns (as io.Copy does).
func TestWriteAliasesCompleteLines(t *testing.T) {
	var got []out
	var offsets []int // where in buf each Text starts, or -1 if elsewhere
	buf := []byte("carried")
	s := New(tmax, func(l Line) {
		got = append(got, out{string(l.Text), l.Kind})
		offsets = append(offsets, offsetIn(buf, l.Text))
	})
	s.Write(buf)
	copy(buf, "XXXXXXX")
	buf = []byte(" line\nwhole\r\n123456789\n")
	s.Write(buf)
	s.Flush()

	want := []out{partial("carried "), full("line"), full("whole"), partial("12345678"), full("9")}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// Once the carried piece is out, even the rest of its line comes from buf.
	if wantOffsets := []int{-1, 1, 6, 13, 21}; !slices.Equal(offsets, wantOffsets) {
		t.Errorf("Texts start at offsets %v of the written buffer; want %v", offsets, wantOffsets)
	}
}

func offsetIn(buf, text []byte) int {
	for i := range buf {
		if len(text) > 0 && &buf[i] == &text[0] {
			return i
		}
	}
	return -1
}

func TestWriteDoesNotAllocate(t *testing.T) {
	s := New(0, func(Line) {})
	data := []byte(strings.Repeat("a log line of moderate length\r\n", 10) + "an open line")
	more := []byte("\n10%\r20%\r")
	s.Write(data) // let the pending buffer grow once
	s.Flush()
	if n := testing.AllocsPerRun(100, func() {
		s.Write(data)
		s.Write(more)
	}); n != 0 {
		t.Errorf("Write allocated %v times per run; want 0", n)
	}
}

func TestReuseAfterFlush(t *testing.T) {
	var got []out
	s := New(tmax, func(l Line) { got = append(got, out{string(l.Text), l.Kind}) })
	s.Write([]byte("a\r"))
	s.Flush()
	s.Write([]byte("\nb"))
	s.Flush()
	s.Flush()
	// The "\n" after Flush starts a new stream: it is an empty line, not the
	// end of a "\r\n".
	want := []out{update("a"), full(""), unterminated("b")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// TestNotReaderFrom guards the bound on memory: io.Copy must reach the
// Splitter only through Write.
func TestNotReaderFrom(t *testing.T) {
	if _, ok := any(New(0, func(Line) {})).(io.ReaderFrom); ok {
		t.Error("*Splitter implements io.ReaderFrom")
	}
}

func FuzzSplitter(f *testing.F) {
	for _, tt := range splitterTests {
		f.Add([]byte(tt.input), uint8(tmax), uint64(1))
	}
	f.Fuzz(func(t *testing.T, input []byte, maxLen uint8, seed uint64) {
		// With maxLen this small, a few hundred bytes reach every path; longer
		// inputs only slow the minimizer, whose cost grows with the square of
		// the input length, until it starves the search.
		if len(input) > 256 {
			t.Skip("input longer than 256 bytes")
		}
		m := int(maxLen%32) + 1 // small, so that short inputs reach the Partial paths
		whole := run(t, m, [][]byte{input})
		if err := checkLines(input, m, whole); err != nil {
			t.Fatalf("maxLen %d, input %q: %v\ngot %v", m, input, err, whole)
		}
		if b := run(t, m, bytewise(input)); !slices.Equal(b, whole) {
			t.Fatalf("maxLen %d, input %q byte by byte:\n got %v\nwant %v", m, input, b, whole)
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		var chunks [][]byte
		for rest := input; len(rest) > 0; {
			n := rng.IntN(min(len(rest), 3*m) + 1) // 0 makes an empty write
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if c := run(t, m, chunks); !slices.Equal(c, whole) {
			t.Fatalf("maxLen %d, input %q in chunks %q:\n got %v\nwant %v", m, input, chunks, c, whole)
		}
	})
}

var sink int

func BenchmarkSplitter(b *testing.B) {
	benchmarks := []struct {
		name string
		line string
	}{
		{"LF80", strings.Repeat("x", 79) + "\n"},
		{"CRLF80", strings.Repeat("x", 78) + "\r\n"},
		{"Progress", " 42% [=======>      ] 1.2MB/s\r"},
		{"Long", strings.Repeat("x", 3*DefaultMaxLen+5) + "\n"},
	}
	const chunk = 32 << 10 // io.Copy's buffer size, as a pipe reader writes
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			data := []byte(strings.Repeat(bm.line, max(1, (1<<20)/len(bm.line))))
			s := New(0, func(l Line) { sink += len(l.Text) })
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				for p := data; len(p) > 0; {
					n := min(len(p), chunk)
					s.Write(p[:n])
					p = p[n:]
				}
			}
			s.Flush()
		})
	}
}
