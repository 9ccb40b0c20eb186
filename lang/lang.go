// Package lang knows the languages runbox runs: how to run a file or inline code of
// each with its interpreter, and how to tell, from what a failed run wrote, a syntax
// error from a runtime error and where in the user's code it happened.
//
// It knows nothing of isolation: a sandbox backend runs the command a Language gives,
// and passes what the program did back to Classify.
package lang

import (
	"slices"
	"strings"
	"syscall"

	"github.com/runboxhq/runbox/api"
)

// Language is one interpreter runbox can run code with. Adding a language is one
// value of this type in a file of its own and a row in the tests.
type Language struct {
	Name       string   // "python"
	Aliases    []string // "py", "python3"
	Extensions []string // ".py", with the dot
	// Interpreter is the absolute path of the interpreter.
	Interpreter string
	// CodeFile is the file name inline code is written to ("main.py").
	CodeFile string
	// Args returns the interpreter's argv (Interpreter first) to run file, a path
	// relative to the work directory, with the user's args after it.
	Args func(file string, args []string) []string
	// Env holds variables the interpreter needs besides the sandbox's base environment.
	Env map[string]string
	// Classify reads a run that did not exit 0 and says whether it was a syntax error,
	// and where the error is in the user's code. Nil means unknown.
	Classify func(o Outcome) Verdict
}

// Outcome is what a failed run did, as Classify needs it.
type Outcome struct {
	File     string // the file that was run, relative to the work directory
	ExitCode int    // when Signal is 0
	Signal   syscall.Signal
	Stdout   []byte
	Stderr   []byte
}

// Verdict is Classify's answer.
type Verdict struct {
	SyntaxError bool
	// Diagnostic locates the error; nil when the output holds no recognizable report.
	Diagnostic *api.Diagnostic
}

var languages []*Language

func register(l *Language) *Language {
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

// ForFile finds the language of a file name by its extension.
func ForFile(name string) (*Language, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return nil, false
	}
	ext := strings.ToLower(name[i:])
	for _, l := range languages {
		if slices.Contains(l.Extensions, ext) {
			return l, true
		}
	}
	return nil, false
}
