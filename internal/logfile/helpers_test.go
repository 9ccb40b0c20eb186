package logfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// record is one parsed line of a log file.
type record struct {
	t            time.Time
	stream, text string
}

const tsFormat = "2006-01-02T15:04:05.000Z"

// parseRecord is the reader's side of the format in the package doc.
func parseRecord(line string) (record, error) {
	if len(line) < len(tsFormat)+1 || line[len(tsFormat)] != ' ' {
		return record{}, errors.New("no timestamp")
	}
	t, err := time.Parse(tsFormat, line[:len(tsFormat)])
	if err != nil {
		return record{}, err
	}
	stream, text, ok := strings.Cut(line[len(tsFormat)+1:], " | ")
	if !ok {
		return record{}, errors.New(`no " | "`)
	}
	r := record{t: t}
	if r.stream, err = unescape(stream); err != nil {
		return record{}, err
	}
	if r.text, err = unescape(text); err != nil {
		return record{}, err
	}
	return r, nil
}

func unescape(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r") {
		return "", errors.New("raw line terminator")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i++; i == len(s) {
			return "", errors.New("lone backslash at end")
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			return "", errors.New("unknown escape")
		}
	}
	return b.String(), nil
}

// logFile is one file of a log: the active one or a backup.
type logFile struct {
	name    string
	size    int64 // on disk, compressed or not
	records []record
}

// backups lists the backups of path, oldest first (their names sort by time).
func backups(t *testing.T, path string) []string {
	t.Helper()
	ext := filepath.Ext(path)
	prefix := strings.TrimSuffix(path, ext) + "-"
	var names []string
	for _, pattern := range []string{prefix + "*" + ext, prefix + "*" + ext + ".gz"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	slices.Sort(names)
	return names
}

// readLog reads and parses every backup of path, oldest first, then path
// itself. Every line must parse and every file must end in "\n".
func readLog(t *testing.T, path string) []logFile {
	t.Helper()
	var files []logFile
	for _, name := range append(backups(t, path), path) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lf := logFile{name: filepath.Base(name), size: int64(len(b))}
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", lf.name, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", lf.name, err)
			}
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s does not end with a newline: ...%q", lf.name, b[max(0, len(b)-40):])
		}
		for line := range strings.Lines(string(b)) {
			r, err := parseRecord(strings.TrimSuffix(line, "\n"))
			if err != nil {
				t.Fatalf("%s: torn or malformed record %q: %v", lf.name, line, err)
			}
			lf.records = append(lf.records, r)
		}
		files = append(files, lf)
	}
	return files
}

// waitFor polls cond until it holds or the test's deadline is near.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := t.Deadline(); ok && d.Add(-time.Second).Before(deadline) {
		deadline = d.Add(-time.Second)
	}
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock advances by step at every reading.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
