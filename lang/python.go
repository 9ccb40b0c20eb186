package lang

import (
	"regexp"
	"strings"

	"github.com/runboxhq/runbox/api"
)

const pythonPath = "/usr/bin/python3"

// Python runs CPython 3.
var Python = register(&Language{
	Name:        "python",
	Aliases:     []string{"py", "python3"},
	Extensions:  []string{".py"},
	Interpreter: pythonPath,
	Package:     "python3-minimal",
	CodeFile:    "main.py",
	// -E ignores PYTHON* variables, -s the user's site-packages, -u buffers nothing so
	// output interleaves as written and survives a kill, and -B writes no __pycache__
	// into the work directory (-E would ignore PYTHONDONTWRITEBYTECODE). Not -I: it
	// also drops the script's directory from sys.path, and "import helper" of a file
	// next to main.py must work.
	Args: func(file string, args []string) []string {
		return argv(pythonPath, []string{"-B", "-E", "-s", "-u"}, file, args)
	},
	// Python 3.13 colours tracebacks on a terminal; NO_COLOR is read despite -E.
	Env:         map[string]string{"NO_COLOR": "1"},
	VersionArgs: []string{"--version"},
	Classify:    classifyPython,
})

var (
	pyHeader      = regexp.MustCompile(`^Traceback \(most recent call last\):$`)
	pyGroupHeader = regexp.MustCompile(`^  \+ Exception Group Traceback \(most recent call last\):$`)
	pyFrame       = regexp.MustCompile(`^  File "(.+)", line (\d+), in .*$`)
	// pyLocation is where a SyntaxError points: a frame without a function.
	pyLocation = regexp.MustCompile(`^  File "(.+)", line (\d+)$`)
	// pyException is the last line's "qualname: str", or qualname alone when str is
	// empty; a qualname such as "f.<locals>.E" or "json.decoder.JSONDecodeError" has
	// neither spaces nor colons.
	pyException   = regexp.MustCompile(`^([^\s:]+)(?:: (.*))?$`)
	pySyntaxError = regexp.MustCompile(`^(SyntaxError|IndentationError|TabError): (.+)$`)
	// Errors of decoding the source have no location block.
	pyNonUTF8       = regexp.MustCompile(`^Non-UTF-8 code starting with '.*' in file (.+) on line (\d+), but no encoding declared; `)
	pyBadEncoding   = regexp.MustCompile(`^encoding problem: \S+$`)
	pySyntaxErrType = map[string]bool{"SyntaxError": true, "IndentationError": true, "TabError": true}
)

func classifyPython(o Outcome) Verdict {
	lines := tailLines(o.Stderr)
	if d := pythonSyntaxError(o, lines); d != nil {
		return Verdict{SyntaxError: true, Diagnostic: d}
	}
	return Verdict{Diagnostic: pythonException(o, lines)}
}

// pythonSyntaxError recognizes the report of a file that did not compile:
//
//	  File "/work/main.py", line 1
//	    print("a"
//	         ^
//	SyntaxError: '(' was never closed
//
// with no traceback, since nothing ran (and so nothing on stdout), and exit code 1.
// The source and caret lines are absent when Python has no source or no offset.
func pythonSyntaxError(o Outcome, lines []string) *api.Diagnostic {
	if o.Signal != 0 || o.ExitCode != 1 || len(o.Stdout) != 0 || len(lines) == 0 {
		return nil
	}
	for _, l := range lines {
		if pyHeader.MatchString(l) || pyGroupHeader.MatchString(l) {
			return nil
		}
	}
	last := len(lines) - 1
	m := pySyntaxError.FindStringSubmatch(lines[last])
	if m == nil {
		return nil
	}
	typ, msg := m[1], m[2]
	for i := last - 1; i >= 0 && i >= last-3; i-- {
		loc := pyLocation.FindStringSubmatch(lines[i])
		if loc == nil {
			if !strings.HasPrefix(lines[i], "    ") {
				break // only the source and caret lines sit between
			}
			continue
		}
		// What precedes is not a frame: warnings at most.
		if i > 0 && (strings.HasPrefix(lines[i-1], "    ") || pyFrame.MatchString(lines[i-1])) {
			return nil
		}
		file, ok := o.userFile(loc[1], false)
		if !ok {
			return nil
		}
		return &api.Diagnostic{Type: typ, Message: message(msg), File: file, Line: atoi(loc[2])}
	}
	// The source could not be decoded: then the report is a single line.
	if last != 0 || typ != "SyntaxError" {
		return nil
	}
	if m := pyNonUTF8.FindStringSubmatch(msg); m != nil {
		if file, ok := o.userFile(m[1], false); ok {
			return &api.Diagnostic{Type: typ, Message: message(msg), File: file, Line: atoi(m[2])}
		}
	}
	if pyBadEncoding.MatchString(msg) {
		file, _ := o.userFile(o.File, true)
		return &api.Diagnostic{Type: typ, Message: message(msg), File: file}
	}
	return nil
}

// pythonException reads the last traceback: the last exception of a chain ("During
// handling of the above exception…") is the one that ended the program. Of an
// exception group it reads the group itself, not its members.
func pythonException(o Outcome, lines []string) *api.Diagnostic {
	section, headed := lines, false
	for i := len(lines) - 1; i >= 0 && !headed; i-- {
		if pyHeader.MatchString(lines[i]) {
			section, headed = lines[i+1:], true
		} else if pyGroupHeader.MatchString(lines[i]) {
			section, headed = nil, true
			for _, l := range lines[i+1:] {
				l, ok := strings.CutPrefix(l, "  | ")
				if !ok {
					break
				}
				section = append(section, l)
			}
		}
	}
	// A traceback whose header was cut off by truncation still ends with frames and
	// the exception, which is all this needs; without a header, frames are required.
	var (
		d        api.Diagnostic
		where    *api.Diagnostic // innermost frame in the user's files
		syntaxAt *api.Diagnostic // the location block of a SyntaxError
		lastFile = -1
	)
	for i, l := range section {
		if m := pyFrame.FindStringSubmatch(l); m != nil {
			lastFile, syntaxAt = i, nil
			if file, ok := o.userFile(m[1], false); ok {
				where = &api.Diagnostic{File: file, Line: atoi(m[2])}
			}
		} else if m := pyLocation.FindStringSubmatch(l); m != nil {
			lastFile, syntaxAt = i, nil
			if file, ok := o.userFile(m[1], false); ok {
				syntaxAt = &api.Diagnostic{File: file, Line: atoi(m[2])}
			}
		}
	}
	if lastFile < 0 && !headed {
		return nil // no traceback at all
	}
	// The exception is the first line after the frames that is not indented like
	// their source lines, carets and "[Previous line repeated …]".
	exc := -1
	for i := lastFile + 1; i < len(section); i++ {
		if section[i] != "" && !strings.HasPrefix(section[i], " ") {
			exc = i
			break
		}
	}
	if exc < 0 {
		return nil
	}
	m := pyException.FindStringSubmatch(section[exc])
	if m == nil {
		return nil
	}
	d.Type = m[1]
	d.Message = message(append([]string{m[2]}, section[exc+1:]...)...)
	if pySyntaxErrType[lastName(d.Type)] && syntaxAt != nil {
		where = syntaxAt
	}
	if where != nil {
		d.File, d.Line = where.File, where.Line
	}
	return &d
}

// lastName is the class name of a qualified name.
func lastName(qualname string) string {
	return qualname[strings.LastIndexByte(qualname, '.')+1:]
}
