package lang

import (
	"path"
	"regexp"
	"strings"

	"github.com/runboxhq/runbox/api"
)

const bashPath = "/bin/bash"

// Bash runs GNU Bash scripts.
var Bash = register(&Language{
	Name:        "bash",
	Aliases:     []string{"sh", "shell"},
	Extensions:  []string{".sh"},
	Interpreter: bashPath,
	Package:     "bash",
	CodeFile:    "main.sh",
	Args: func(file string, args []string) []string {
		return argv(bashPath, nil, file, args)
	},
	VersionArgs: []string{"--version"},
	Classify:    classifyBash,
})

// Bash prefixes its errors with the script's name as it was given and the line:
//
//	main.sh: line 3: foo: command not found
//	main.sh: line 1: syntax error near unexpected token `then'
//	main.sh: line 1: `if then fi'
//
// A builtin's name may come between ("main.sh: eval: line 1: …"); those lines count
// in eval's string, not in the file, and are not used. Bash reports no columns.
var (
	shError      = regexp.MustCompile(`^(.+?): line (\d+): (.*)$`)
	shSyntax     = regexp.MustCompile("^(?:syntax error near unexpected token .*|syntax error: unexpected end of file|unexpected EOF while looking for matching .*)$")
	shSourceEcho = regexp.MustCompile("^`.*'$")
)

// shTypes names Bash's errors, which have no types, by how their messages end.
var shTypes = []struct{ suffix, typ string }{
	{"command not found", "CommandNotFound"},
	{"No such file or directory", "FileNotFound"},
	{"Permission denied", "PermissionDenied"},
	{"unbound variable", "UnboundVariable"},
	{"bad substitution", "BadSubstitution"},
	{"readonly variable", "ReadonlyVariable"},
}

type shLine struct {
	file string // relative to the work directory
	line int
	msg  string
}

// parseShLine parses one of Bash's error lines about a file of the user's.
func (o Outcome) parseShLine(l string) (shLine, bool) {
	m := shError.FindStringSubmatch(l)
	if m == nil || strings.Contains(m[1], ": ") {
		return shLine{}, false
	}
	file, ok := o.userFile(m[1], true)
	if !ok {
		return shLine{}, false
	}
	return shLine{file, atoi(m[2]), m[3]}, true
}

func classifyBash(o Outcome) Verdict {
	lines := tailLines(o.Stderr)
	// Bash runs each command as soon as it has parsed it, so a syntax error may follow
	// output; it stops there and exits 2, its report the last thing written. After
	// "near unexpected token" it echoes the offending source line.
	if o.Signal == 0 && o.ExitCode == 2 {
		for i := len(lines) - 1; i >= 0 && i >= len(lines)-2; i-- {
			e, ok := o.parseShLine(lines[i])
			if !ok || !shSyntax.MatchString(e.msg) || e.file != path.Clean(o.File) {
				continue
			}
			if i == len(lines)-2 {
				echo, ok := o.parseShLine(lines[i+1])
				if !ok || echo.file != e.file || !shSourceEcho.MatchString(echo.msg) {
					break
				}
			}
			return Verdict{SyntaxError: true, Diagnostic: shDiagnostic(e, "SyntaxError")}
		}
	}
	// Otherwise the last error Bash reported about the user's files is the likeliest
	// cause of the failure.
	for i := len(lines) - 1; i >= 0; i-- {
		e, ok := o.parseShLine(lines[i])
		if !ok {
			continue
		}
		if shSourceEcho.MatchString(e.msg) && i > 0 {
			if prev, ok := o.parseShLine(lines[i-1]); ok && strings.Contains(prev.msg, "syntax error") {
				e = prev
			}
		}
		return Verdict{Diagnostic: shDiagnostic(e, shType(e.msg))}
	}
	return Verdict{}
}

func shType(msg string) string {
	for _, t := range shTypes {
		if strings.HasSuffix(msg, t.suffix) {
			return t.typ
		}
	}
	switch {
	case strings.Contains(msg, "division by 0"):
		return "DivisionByZero"
	case strings.Contains(msg, "syntax error"):
		return "SyntaxError"
	}
	return "Error"
}

func shDiagnostic(e shLine, typ string) *api.Diagnostic {
	return &api.Diagnostic{Type: typ, Message: message(e.msg), File: e.file, Line: e.line}
}
