package lang

import (
	"regexp"
	"strings"

	"github.com/runboxhq/runbox/api"
)

const nodePath = "/usr/bin/node"

// JavaScript runs Node.js; .mjs files are ES modules, .cjs and .js CommonJS unless a
// package.json says otherwise.
var JavaScript = register(&Language{
	Name:        "javascript",
	Aliases:     []string{"js", "node"},
	Extensions:  []string{".js", ".mjs", ".cjs"},
	Interpreter: nodePath,
	Package:     "nodejs",
	CodeFile:    "main.js",
	Args: func(file string, args []string) []string {
		return argv(nodePath, nil, file, args)
	},
	// Node colours the frames of error reports on a terminal.
	Env:         map[string]string{"NO_COLOR": "1", "NODE_DISABLE_COLORS": "1"},
	VersionArgs: []string{"--version"},
	Classify:    classifyNode,
})

// Node reports an uncaught exception as
//
//	/work/main.js:2          where it was thrown (file:///… for an ES module)
//	  return null.x;         the source line
//	              ^          the caret, or blanks when there is no column
//	                         a blank line, only when an Error follows
//	TypeError: Cannot read properties of null (reading 'x')
//	    at f (/work/main.js:2:15)
//	    … more frames, then the error's own properties in braces
//
//	Node.js v20.20.2
//
// and a thrown value that is not an Error (throw 42) by its inspection right after
// the caret line.
var (
	jsHeader = regexp.MustCompile(`^(.+):(\d+)$`)
	jsCaret  = regexp.MustCompile(`^[ \t]*\^*[ \t]*$`)
	// jsError is the first line of an error's stack: its name, for some a bracket
	// ("AssertionError [ERR_ASSERTION]", "MyErr [Error]"), then the message.
	jsError     = regexp.MustCompile(`^([A-Za-z_$][\w$]*)(?: \[[^\]]*\])?(?:: (.*))?$`)
	jsStackLine = regexp.MustCompile(`^    (?:at |\.\.\. )`)
	jsFooter    = regexp.MustCompile(`^Node\.js v\d+\.\d+`)
	jsPosition  = regexp.MustCompile(`^(.+):(\d+):(\d+)$`)
)

const jsTraceHint = "(Use `node --trace-uncaught ...` to show where the exception was thrown)"

func classifyNode(o Outcome) Verdict {
	lines := tailLines(o.Stderr)
	if n := len(lines); n > 0 && jsFooter.MatchString(lines[n-1]) {
		lines = trimBlank(lines[:n-1])
	}
	r := parseNodeReport(o, lines)
	if r == nil {
		return Verdict{}
	}
	d := &api.Diagnostic{Type: r.typ, Message: r.msg}
	where := r.frame
	if r.header != nil {
		where = r.header
		// The caret is missing at the end of input; a frame on the same line knows.
		if where.Column == 0 && r.frame != nil && r.frame.File == where.File && r.frame.Line == where.Line {
			where = r.frame
		}
	}
	if where != nil {
		d.File, d.Line, d.Column = where.File, where.Line, where.Column
	}
	// A compile error has no user frame: the stack is all node:internal (wrapSafe,
	// compileSourceTextModule). JSON.parse, eval and a require of a broken file have
	// the caller's frame.
	syntax := r.typ == "SyntaxError" && r.header != nil && !r.userFrames &&
		o.Signal == 0 && o.ExitCode == 1 && len(o.Stdout) == 0
	return Verdict{SyntaxError: syntax, Diagnostic: d}
}

type nodeReport struct {
	typ, msg   string
	header     *api.Diagnostic // where it was thrown, when in the user's files
	frame      *api.Diagnostic // the innermost frame in the user's files
	userFrames bool
}

func parseNodeReport(o Outcome, lines []string) *nodeReport {
	r := &nodeReport{}
	// The top-level stack is the last run of lines indented by exactly four spaces
	// ("at …" and "... 4 lines matching cause stack trace ..."); a cause's stack, in
	// the properties after it, is indented deeper.
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if jsStackLine.MatchString(lines[i]) {
			end = i + 1
			break
		}
	}
	if end < 0 {
		return parseNodeStackless(o, lines)
	}
	start := end - 1
	for start > 0 && jsStackLine.MatchString(lines[start-1]) {
		start--
	}
	for _, l := range lines[start:end] {
		f, ok := o.nodeFrame(l)
		if !ok {
			continue
		}
		if !r.userFrames {
			r.frame = f
		}
		r.userFrames = true
	}
	first := -1
	for i := start - 5; i >= 0; i-- {
		if isNodeHeader(lines, i) && isBlank(lines[i+3]) && jsError.MatchString(lines[i+4]) {
			r.header, first = o.nodeHeader(lines, i), i+4
			break
		}
	}
	if first < 0 {
		// No header: take the error line nearest the stack that starts a paragraph.
		for i := start - 1; i >= 0; i-- {
			if jsError.MatchString(lines[i]) && (i == 0 || isBlank(lines[i-1])) {
				first = i
				break
			}
		}
	}
	if first < 0 {
		return nil
	}
	m := jsError.FindStringSubmatch(lines[first])
	r.typ = m[1]
	r.msg = message(append([]string{m[2]}, lines[first+1:start]...)...)
	return r
}

// parseNodeStackless reads a report without a stack: a thrown value that is not an
// Error, or an Error whose stack was removed ("[Error: message]").
func parseNodeStackless(o Outcome, lines []string) *nodeReport {
	h := -1
	for i := len(lines) - 3; i >= 0; i-- {
		if isNodeHeader(lines, i) {
			h = i
			break
		}
	}
	if h < 0 {
		return nil
	}
	r := &nodeReport{header: o.nodeHeader(lines, h)}
	rest := lines[h+3:]
	if len(rest) > 0 && isBlank(rest[0]) {
		rest = trimLeadingBlank(rest)
		if len(rest) == 0 {
			return nil
		}
		first := rest[0]
		if s, ok := strings.CutPrefix(first, "["); ok && strings.HasSuffix(s, "]") {
			first = strings.TrimSuffix(s, "]")
		}
		if m := jsError.FindStringSubmatch(first); m != nil {
			r.typ, r.msg = m[1], message(append([]string{m[2]}, rest[1:]...)...)
			return r
		}
		r.typ, r.msg = "Error", message(rest...)
		return r
	}
	if n := len(rest); n > 0 && rest[n-1] == jsTraceHint {
		rest = rest[:n-1]
	}
	r.typ, r.msg = "Uncaught", message(rest...)
	return r
}

func trimLeadingBlank(lines []string) []string {
	for len(lines) > 0 && isBlank(lines[0]) {
		lines = lines[1:]
	}
	return lines
}

// isNodeHeader reports whether lines[i] starts "file:line", source line, caret line.
func isNodeHeader(lines []string, i int) bool {
	return i >= 0 && i+2 < len(lines) && jsHeader.MatchString(lines[i]) && jsCaret.MatchString(lines[i+2])
}

// nodeHeader returns the location of the header at lines[i], or nil when it is not in
// the user's files (node:internal/…, <anonymous_script> of JSON.parse and eval).
func (o Outcome) nodeHeader(lines []string, i int) *api.Diagnostic {
	m := jsHeader.FindStringSubmatch(lines[i])
	file, ok := o.userFile(fileURLPath(m[1]), false)
	if !ok {
		return nil
	}
	d := &api.Diagnostic{File: file, Line: atoi(m[2])}
	// The caret line copies the source line's tabs, so its offset is the column.
	if c := strings.IndexByte(lines[i+2], '^'); c >= 0 {
		d.Column = c + 1
	}
	return d
}

// nodeFrame parses a stack line: "at f (/work/main.js:3:11)", "at /work/main.js:3:11",
// "at async f (file:///work/main.mjs:1:5)", "at eval (eval at g (/work/main.js:1:1),
// <anonymous>:3:7)". It reports whether the frame is in the user's files.
func (o Outcome) nodeFrame(line string) (*api.Diagnostic, bool) {
	s, ok := strings.CutPrefix(line, "    at ")
	if !ok {
		return nil, false
	}
	loc := s
	if strings.HasSuffix(s, ")") {
		// The location is in the last balanced parentheses.
		depth := 0
		for i := len(s) - 1; i >= 0; i-- {
			switch s[i] {
			case ')':
				depth++
			case '(':
				depth--
			}
			if depth == 0 {
				loc = s[i+1 : len(s)-1]
				break
			}
		}
	}
	// Code made by eval or new Function is placed after its origin.
	if strings.HasPrefix(loc, "eval at ") {
		i := strings.LastIndex(loc, ", ")
		if i < 0 {
			return nil, false
		}
		loc = loc[i+2:]
	}
	m := jsPosition.FindStringSubmatch(loc)
	if m == nil {
		return nil, false
	}
	file, ok := o.userFile(fileURLPath(m[1]), false)
	if !ok {
		return nil, false
	}
	return &api.Diagnostic{File: file, Line: atoi(m[2]), Column: atoi(m[3])}, true
}
