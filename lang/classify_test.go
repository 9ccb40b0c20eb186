package lang_test

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/lang"
)

// Reports as the interpreters print them in a sandbox, with the work directory at
// /work, for the shapes the live tests cannot produce at will.
const (
	pySyntax = `  File "/work/main.py", line 1
    print("a"
         ^
SyntaxError: '(' was never closed
`
	pyCompile = `Traceback (most recent call last):
  File "/work/main.py", line 1, in <module>
    compile("(", "/work/x.py", "exec")
  File "/work/x.py", line 1
    (
    ^
SyntaxError: '(' was never closed
`
	// The head of a long traceback was cut off by a capture limit.
	pyTruncated = `    return g(n)
           ^^^^
  File "/work/main.py", line 6, in g
    return g(n)
           ^^^^
  [Previous line repeated 990 more times]
RecursionError: maximum recursion depth exceeded
`
	pyNoUserFrame = `Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/usr/lib/python3.11/runpy.py", line 88, in _run_code
KeyboardInterrupt
`
	pyNonUTF8 = "SyntaxError: Non-UTF-8 code starting with '\\xff' in file /work/main.py on line 2, but no encoding declared; see https://peps.python.org/pep-0263/ for details\n"
	jsSyntax  = `/work/main.js:3
  let c = );
          ^

SyntaxError: Unexpected token ')'
    at internalCompileFunction (node:internal/vm:76:18)
    at wrapSafe (node:internal/modules/cjs/loader:1283:20)
    at Module._compile (node:internal/modules/cjs/loader:1328:27)

Node.js v22.1.0
`
	jsEval = `<anonymous_script>:3
throw new Error('x')
^

Error: x
    at eval (eval at <anonymous> (/work/main.js:1:1), <anonymous>:3:7)
    at Object.<anonymous> (/work/main.js:1:37)
    at Module._compile (node:internal/modules/cjs/loader:1521:14)

Node.js v20.20.2
`
	jsStackless = `/work/main.js:1
const e = new Error("nostack"); e.stack = undefined; throw e
                                                     ^

[Error: nostack]

Node.js v20.20.2
`
	jsProps = `node:internal/modules/esm/resolve:283
    throw new ERR_MODULE_NOT_FOUND(
          ^

Error [ERR_MODULE_NOT_FOUND]: Cannot find module '/work/nope.mjs' imported from /work/main.mjs
    at finalizeResolution (node:internal/modules/esm/resolve:283:11)
    at ModuleJob._link (node:internal/modules/esm/module_job:168:49) {
  code: 'ERR_MODULE_NOT_FOUND',
  url: 'file:///work/nope.mjs'
}

Node.js v20.20.2
`
	shSyntax = "a\n/work/main.sh: line 2: syntax error near unexpected token `then'\n/work/main.sh: line 2: `if then'\n"
	shEval   = "main.sh: eval: line 1: syntax error near unexpected token `then'\nmain.sh: eval: line 1: `if then'\n"
)

func TestClassifyReports(t *testing.T) {
	for _, tt := range []struct {
		name    string
		l       *lang.Language
		o       lang.Outcome
		syntax  bool
		diag    *api.Diagnostic
		message string // the exact message, when the diagnostic's is a part
	}{{
		name:   "python syntax error",
		l:      lang.Python,
		o:      lang.Outcome{ExitCode: 1, Stderr: []byte(pySyntax)},
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "main.py", Line: 1},
	}, {
		name:   "python syntax error after a warning",
		l:      lang.Python,
		o:      lang.Outcome{ExitCode: 1, Stderr: []byte("/work/main.py:1: SyntaxWarning: invalid escape sequence '\\d'\n  x = '\\d'\n" + pySyntax)},
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "main.py", Line: 1},
	}, {
		// Not syntax errors, but the report still locates the error.
		name: "python report but something ran",
		l:    lang.Python,
		o:    lang.Outcome{ExitCode: 1, Stdout: []byte("hi\n"), Stderr: []byte(pySyntax)},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "main.py", Line: 1},
	}, {
		name: "python report in another work directory",
		l:    lang.Python,
		o:    lang.Outcome{ExitCode: 1, Stderr: []byte(pySyntax), WorkDir: "/elsewhere"},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed"},
	}, {
		name: "python report then more output",
		l:    lang.Python,
		o:    lang.Outcome{ExitCode: 1, Stderr: []byte(pySyntax + "later\n")},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed\nlater", File: "main.py", Line: 1},
	}, {
		name: "python compile of a user file",
		l:    lang.Python,
		o:    lang.Outcome{ExitCode: 1, Stderr: []byte(pyCompile)},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "x.py", Line: 1},
	}, {
		name:   "python source not UTF-8",
		l:      lang.Python,
		o:      lang.Outcome{ExitCode: 1, Stderr: []byte(pyNonUTF8)},
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "Non-UTF-8 code", File: "main.py", Line: 2},
	}, {
		name: "python truncated traceback",
		l:    lang.Python,
		o:    lang.Outcome{ExitCode: 1, Stderr: []byte(pyTruncated)},
		diag: &api.Diagnostic{Type: "RecursionError", Message: "maximum recursion depth exceeded", File: "main.py", Line: 6},
	}, {
		name: "python no user frame",
		l:    lang.Python,
		o:    lang.Outcome{ExitCode: 1, Stderr: []byte(pyNoUserFrame)},
		diag: &api.Diagnostic{Type: "KeyboardInterrupt"},
	}, {
		name: "python killed",
		l:    lang.Python,
		o:    lang.Outcome{Signal: 9, ExitCode: -1, Stderr: []byte(pySyntax)},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "main.py", Line: 1},
	}, {
		name:   "node syntax error",
		l:      lang.JavaScript,
		o:      lang.Outcome{ExitCode: 1, Stderr: []byte(jsSyntax)},
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "Unexpected token ')'", File: "main.js", Line: 3, Column: 11},
	}, {
		name: "node syntax error in another work directory",
		l:    lang.JavaScript,
		o:    lang.Outcome{ExitCode: 1, Stderr: []byte(jsSyntax), WorkDir: "/elsewhere"},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "Unexpected token ')'"},
	}, {
		name:    "node eval",
		l:       lang.JavaScript,
		o:       lang.Outcome{ExitCode: 1, Stderr: []byte(jsEval)},
		diag:    &api.Diagnostic{Type: "Error", Message: "x", File: "main.js", Line: 1, Column: 37},
		message: "x",
	}, {
		name:    "node error without stack",
		l:       lang.JavaScript,
		o:       lang.Outcome{ExitCode: 1, Stderr: []byte(jsStackless)},
		diag:    &api.Diagnostic{Type: "Error", Message: "nostack", File: "main.js", Line: 1, Column: 54},
		message: "nostack",
	}, {
		name:    "node error with properties",
		l:       lang.JavaScript,
		o:       lang.Outcome{ExitCode: 1, Stderr: []byte(jsProps)},
		diag:    &api.Diagnostic{Type: "Error", Message: "Cannot find module"},
		message: "Cannot find module '/work/nope.mjs' imported from /work/main.mjs",
	}, {
		name: "node invalid UTF-8",
		l:    lang.JavaScript,
		o:    lang.Outcome{ExitCode: 1, Stderr: []byte("/work/main.js:1\nthrow 'x\xff'\n^\nx\xff\n")},
		diag: &api.Diagnostic{Type: "Uncaught", Message: "x\uFFFD", File: "main.js", Line: 1, Column: 1},
	}, {
		name:   "bash absolute script path",
		l:      lang.Bash,
		o:      lang.Outcome{File: "main.sh", ExitCode: 2, Stdout: []byte("a\n"), Stderr: []byte(shSyntax)},
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "syntax error near unexpected token `then'", File: "main.sh", Line: 2},
	}, {
		name: "bash syntax error of another file",
		l:    lang.Bash,
		o:    lang.Outcome{File: "other.sh", ExitCode: 2, Stderr: []byte(shSyntax)},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "syntax error near unexpected token `then'", File: "main.sh", Line: 2},
	}, {
		name: "bash eval",
		l:    lang.Bash,
		o:    lang.Outcome{File: "main.sh", ExitCode: 2, Stderr: []byte(shEval)},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.o.File == "" {
				tt.o.File = tt.l.CodeFile
			}
			v := tt.l.Classify(tt.o)
			if v.SyntaxError != tt.syntax || !diagMatches(v.Diagnostic, tt.diag) {
				t.Errorf("Classify = %v %s, want %v %s", v.SyntaxError, show(v.Diagnostic), tt.syntax, show(tt.diag))
			}
			if tt.message != "" && v.Diagnostic != nil && v.Diagnostic.Message != tt.message {
				t.Errorf("Message = %q, want %q", v.Diagnostic.Message, tt.message)
			}
		})
	}
}

func TestClassifyBoundsMessage(t *testing.T) {
	long := strings.Repeat("é", 10000)
	for _, l := range lang.All() {
		stderr := map[string]string{
			"python":     "Traceback (most recent call last):\n  File \"/work/main.py\", line 1, in <module>\nValueError: " + long + "\n",
			"javascript": "/work/main.js:1\nthrow 'x'\n^\n" + long + "\n",
			"bash":       "main.sh: line 1: " + long + "\n",
		}[l.Name]
		v := l.Classify(lang.Outcome{File: l.CodeFile, ExitCode: 1, Stderr: []byte(stderr)})
		if v.Diagnostic == nil {
			t.Fatalf("%s: no diagnostic", l.Name)
		}
		if m := v.Diagnostic.Message; len(m) > 5<<10 || !utf8.ValidString(m) || !strings.HasPrefix(long, strings.TrimSuffix(m, "…")) {
			t.Errorf("%s: Message of %d bytes (valid UTF-8: %v), want the start of the message, bounded", l.Name, len(m), utf8.ValidString(m))
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{pySyntax, pyCompile, pyTruncated, pyNoUserFrame, pyNonUTF8, jsSyntax, jsEval, jsStackless, jsProps, shSyntax, shEval,
		"  + Exception Group Traceback (most recent call last):\n  |   File \"/work/main.py\", line 2, in <module>\n  | ExceptionGroup: g (1 sub-exception)\n  +-+---- 1 ----\n    | ValueError: v\n    +------\n",
		"/work/main.js:1\nthrow 42\n^\n42\n" + "(Use `node --trace-uncaught ...` to show where the exception was thrown)\n",
		"    at f (/work/main.js:1:1)\n", "    at eval (eval at (((", "  File \"/work/", "\n\n\n", "",
	} {
		f.Add([]byte(s), uint8(1), true)
	}
	f.Fuzz(func(t *testing.T, stderr []byte, exit uint8, stdoutEmpty bool) {
		o := lang.Outcome{ExitCode: int(exit), Stderr: stderr}
		if !stdoutEmpty {
			o.Stdout = []byte("x")
		}
		for _, l := range lang.All() {
			o.File = l.CodeFile
			v := l.Classify(o)
			d := v.Diagnostic
			if d == nil {
				if v.SyntaxError {
					t.Fatalf("%s: syntax error without a diagnostic", l.Name)
				}
				continue
			}
			for _, s := range []string{d.Type, d.Message, d.File} {
				if !utf8.ValidString(s) {
					t.Fatalf("%s: invalid UTF-8 in %+v", l.Name, *d)
				}
			}
			if d.Line < 0 || d.Column < 0 || len(d.Message) > 5<<10 {
				t.Fatalf("%s: out of range: %+v", l.Name, *d)
			}
			if d.File != "" && (path.IsAbs(d.File) || d.File == ".." || strings.HasPrefix(d.File, "../")) {
				t.Fatalf("%s: file outside the work directory: %+v", l.Name, *d)
			}
		}
	})
}
