package lang

import (
	"bytes"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// tailLimit is how much of the end of stderr Classify reads. Interpreters write
	// their report last, and a capture that kept a head and a tail keeps it whole.
	tailLimit = 64 << 10
	// maxMessage bounds Diagnostic.Message, in bytes.
	maxMessage = 4 << 10
)

// tailLines returns the last tailLimit bytes of b as lines, valid UTF-8, without the
// trailing blank lines.
func tailLines(b []byte) []string {
	if len(b) > tailLimit {
		b = b[len(b)-tailLimit:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:] // the first line was cut
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	return trimBlank(lines)
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && isBlank(lines[len(lines)-1]) {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func isBlank(s string) bool { return strings.TrimSpace(s) == "" }

// message joins and bounds the lines of an interpreter's message.
func message(lines ...string) string {
	s := strings.TrimSpace(strings.Join(lines, "\n"))
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1] // a rune was cut
	}
	return s + "…"
}

// userFile reports whether p, a path an interpreter printed, is one of the user's
// files, and returns it relative to the work directory. Relative paths count only
// when relOK: Bash prints the script name as it was given, Python and Node print
// absolute paths for files and relative names for code that is not a file ("x" of
// compile("(", "x", "exec")).
func (o Outcome) userFile(p string, relOK bool) (string, bool) {
	if p == "" || strings.ContainsAny(p, "<>\n") {
		return "", false
	}
	if !path.IsAbs(p) {
		if !relOK {
			return "", false
		}
		c := path.Clean(p)
		if c == "." || c == ".." || strings.HasPrefix(c, "../") {
			return "", false
		}
		return c, true
	}
	wd := path.Clean(o.WorkDir)
	if o.WorkDir == "" {
		wd = DefaultWorkDir
	}
	c := path.Clean(p)
	if wd == "/" {
		return c[1:], c != "/"
	}
	rel, ok := strings.CutPrefix(c, wd+"/")
	return rel, ok
}

// fileURLPath turns a file:// URL (Node's name of an ES module) into a path.
func fileURLPath(s string) string {
	if !strings.HasPrefix(s, "file://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Path == "" {
		return ""
	}
	return u.Path
}

// atoi is strconv.Atoi that gives 0 for what is not a small positive number.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<30 {
		return 0
	}
	return n
}
