// Package lang knows the languages runbox runs: how to run a file or inline code of
// each with its interpreter, and how to tell, from what a failed run wrote, a syntax
// error from a runtime error and where in the user's code it happened.
//
// It knows nothing of isolation: a sandbox backend runs the command a Language gives,
// and passes what the program did back to Classify.
//
// # Classification
//
// A syntax error means the program did not compile, so none of it ran: Python's and
// Node's compile-time reports, and Bash's parser stopping the script it was given.
// A syntax error found later, by importing or sourcing a broken sibling file, by
// compile, eval or JSON.parse, is a runtime error whose [api.Diagnostic] may still
// have Type "SyntaxError" and point into the broken file.
//
// Classify reads the interpreter's own report, anchored at the end of stderr where
// the interpreter writes it last, and recognizes it by its full shape, so a program
// that merely prints "SyntaxError: …" is not taken for one. It never fails: output it
// does not recognize gives a nil Diagnostic. It reads at most the last 64 KiB of
// stderr, the part that holds the report when a huge traceback was truncated.
//
// A Diagnostic points at the innermost place in the user's files (those under the
// work directory) and skips frames of the runtime (node:internal/…, <frozen …>, the
// standard library). Its Message is the interpreter's whole message, trimmed and
// bounded, with every line of a multi-line message kept. Columns are 1-based as the
// interpreter counts them (UTF-16 units for Node); Python's are 0 because it prints
// source lines without their indentation, so its carets do not give the column.
package lang

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/proc"
)

// DefaultWorkDir is where a sandbox puts the user's files and runs the program.
const DefaultWorkDir = "/work"

// Language is one interpreter runbox can run code with. Adding a language is one
// value of this type in a file of its own and a row in the tests.
type Language struct {
	Name       string   // "python"
	Aliases    []string // "py", "python3"
	Extensions []string // ".py", with the dot
	// Interpreter is the absolute path of the interpreter.
	Interpreter string
	// Package is the Debian package that installs Interpreter, for the error that
	// says how to get it.
	Package string
	// CodeFile is the file name inline code is written to ("main.py").
	CodeFile string
	// Args returns the interpreter's argv (Interpreter first) to run file, a path
	// relative to the work directory, with the user's args after it. The program must
	// run with the work directory as its current directory.
	Args func(file string, args []string) []string
	// Env holds variables the interpreter needs besides the sandbox's base environment.
	Env map[string]string
	// VersionArgs are the arguments that make the interpreter print its version.
	VersionArgs []string
	// Classify reads a run that did not exit 0 and says whether it was a syntax error,
	// and where the error is in the user's code. It never panics, whatever the output.
	Classify func(o Outcome) Verdict
}

// Outcome is what a failed run did, as Classify needs it.
type Outcome struct {
	File     string // the file that was run, relative to the work directory
	ExitCode int    // when Signal is 0
	Signal   syscall.Signal
	Stdout   []byte
	Stderr   []byte // possibly truncated, any bytes
	// WorkDir is the work directory as the interpreter saw it (empty: DefaultWorkDir).
	// Paths under it are the user's files; diagnostics name them relative to it. It is
	// not DefaultWorkDir when the program ran outside a sandbox, as in tests.
	WorkDir string
}

// Verdict is Classify's answer.
type Verdict struct {
	SyntaxError bool
	// Diagnostic locates the error; nil when the output holds no recognizable report.
	Diagnostic *api.Diagnostic
}

// Bounds of Version: the interpreter only prints a line, so more time or output means
// something is wrong.
const (
	versionTimeout = 10 * time.Second
	versionOutput  = 4 << 10
)

var versionNumber = regexp.MustCompile(`\d+\.\d+(?:\.\d+)*`)

// Version runs the interpreter to ask its version and returns the number, such as
// "3.11.2". It runs it each time, with a minimal environment: the interpreter may have
// been upgraded under a running server.
func (l *Language) Version(ctx context.Context) (string, error) {
	c := proc.Command(l.Interpreter, l.VersionArgs...)
	c.Env = []string{"PATH=/usr/bin:/bin"}
	c.Timeout = versionTimeout
	c.Stdout = []proc.Sink{proc.Capture(versionOutput)}
	c.Stderr = []proc.Sink{proc.Capture(versionOutput)}
	c.Check = true
	res, err := c.Run(ctx)
	if err != nil {
		return "", fmt.Errorf("lang: %s version: %w", l.Name, err)
	}
	// Python 2 and some builds print the version on stderr.
	out := firstLine(res.Stdout)
	if out == "" {
		out = firstLine(res.Stderr)
	}
	v := versionNumber.FindString(out)
	if v == "" {
		return "", fmt.Errorf("lang: %s version: no version number in %q", l.Name, out)
	}
	return v, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(s)
}

var languages []*Language

// register adds l to the known languages. A name, alias or extension that is already
// taken is a programming error caught at init.
func register(l *Language) *Language {
	for _, o := range languages {
		for _, n := range append([]string{l.Name}, l.Aliases...) {
			if o.Name == n || slices.Contains(o.Aliases, n) {
				panic("lang: " + n + " registered twice")
			}
		}
		for _, e := range l.Extensions {
			if slices.Contains(o.Extensions, e) {
				panic("lang: extension " + e + " registered twice")
			}
		}
	}
	languages = append(languages, l)
	return l
}

// All returns the known languages in name order.
func All() []*Language {
	out := slices.Clone(languages)
	slices.SortFunc(out, func(a, b *Language) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup finds a language by name or alias, ignoring case.
func Lookup(name string) (*Language, bool) {
	name = strings.ToLower(name)
	for _, l := range languages {
		if l.Name == name || slices.Contains(l.Aliases, name) {
			return l, true
		}
	}
	return nil, false
}

// ForFile finds the language of a file name (a slash-separated path) by its
// extension, ignoring case.
func ForFile(name string) (*Language, bool) {
	ext := strings.ToLower(path.Ext(name))
	if ext == "" {
		return nil, false
	}
	for _, l := range languages {
		if slices.Contains(l.Extensions, ext) {
			return l, true
		}
	}
	return nil, false
}

// argv is the common shape of Args: interpreter, its flags, the file, the user's args.
func argv(interpreter string, flags []string, file string, args []string) []string {
	if strings.HasPrefix(file, "-") {
		file = "./" + file // a file, not an option
	}
	out := make([]string, 0, 2+len(flags)+len(args))
	out = append(out, interpreter)
	out = append(out, flags...)
	out = append(out, file)
	return append(out, args...)
}
