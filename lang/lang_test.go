package lang_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/proc"
)

// runTimeout bounds one interpreter run; the cases take milliseconds.
const runTimeout = 30 * time.Second

func TestLookup(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"python", "python"}, {"PY", "python"}, {"python3", "python"},
		{"javascript", "javascript"}, {"js", "javascript"}, {"Node", "javascript"},
		{"bash", "bash"}, {"sh", "bash"}, {"shell", "bash"},
		{"ruby", ""}, {"", ""},
	} {
		l, ok := lang.Lookup(tt.name)
		if got := name(l); ok != (tt.want != "") || got != tt.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}

func TestForFile(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"main.py", "python"}, {"dir/MAIN.PY", "python"},
		{"main.js", "javascript"}, {"a.mjs", "javascript"}, {"a.cjs", "javascript"},
		{"run.sh", "bash"},
		{"main", ""}, {"main.rb", ""}, {"dir.py/main", ""}, {".py", "python"}, {"", ""},
	} {
		l, ok := lang.ForFile(tt.file)
		if got := name(l); ok != (tt.want != "") || got != tt.want {
			t.Errorf("ForFile(%q) = %q, %v; want %q", tt.file, got, ok, tt.want)
		}
	}
}

func TestAll(t *testing.T) {
	all := lang.All()
	var names []string
	for _, l := range all {
		names = append(names, l.Name)
	}
	if want := []string{"bash", "javascript", "python"}; !slices.Equal(names, want) {
		t.Fatalf("All() = %v, want %v", names, want)
	}
	for _, l := range all {
		if !filepath.IsAbs(l.Interpreter) {
			t.Errorf("%s: Interpreter %q is not absolute", l.Name, l.Interpreter)
		}
		if got, ok := lang.ForFile(l.CodeFile); !ok || got != l {
			t.Errorf("%s: ForFile(CodeFile %q) = %q", l.Name, l.CodeFile, name(got))
		}
		if got, ok := lang.Lookup(l.Name); !ok || got != l {
			t.Errorf("%s: Lookup(Name) = %q", l.Name, name(got))
		}
		if l.Classify == nil || l.Args == nil || len(l.VersionArgs) == 0 {
			t.Errorf("%s: Classify, Args or VersionArgs missing", l.Name)
		}
		args := l.Args("main", []string{"a", "-b"})
		if args[0] != l.Interpreter || !slices.Equal(args[len(args)-3:], []string{"main", "a", "-b"}) {
			t.Errorf("%s: Args = %q, want the interpreter first and main a -b last", l.Name, args)
		}
		if args := l.Args("-x", nil); args[len(args)-1] != "./-x" {
			t.Errorf("%s: Args(-x) = %q, want ./-x last so that it is not an option", l.Name, args)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, l := range lang.All() {
		t.Run(l.Name, func(t *testing.T) {
			t.Parallel()
			needInterpreter(t, l)
			v, err := l.Version(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`).MatchString(v) {
				t.Errorf("Version() = %q, want a version number", v)
			}
		})
	}
}

func TestVersionNoInterpreter(t *testing.T) {
	l := *lang.Python
	l.Interpreter = filepath.Join(t.TempDir(), "python3")
	if v, err := l.Version(t.Context()); err == nil {
		t.Fatalf("Version() of a missing interpreter = %q, want an error", v)
	}
}

// TestPythonArgs checks that the script's directory stays on sys.path while the
// environment, the user's site-packages and bytecode writing are off.
func TestPythonArgs(t *testing.T) {
	needInterpreter(t, lang.Python)
	dir := workDir(t)
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"leak.py": ""})
	writeFiles(t, dir, map[string]string{
		"helper.py": "def greet(who):\n    return 'hello ' + who\n",
		"main.py": `import sys
from helper import greet
try:
    import leak
    print("PYTHONPATH was read")
except ImportError:
    pass
f = sys.flags
print(greet(sys.argv[1]), f.ignore_environment, f.no_user_site, f.dont_write_bytecode)
`,
	})
	res := run(t, lang.Python, dir, "main.py", []string{"world"}, "PYTHONPATH="+outside)
	if !res.Success() {
		t.Fatalf("run: %s\n%s", res.Status, res.Stderr)
	}
	if got, want := string(res.Stdout), "hello world 1 1 1\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "__pycache__")); err == nil {
		t.Errorf("__pycache__ was written into the work directory")
	}
}

func TestArgsPassArgs(t *testing.T) {
	for _, tt := range []struct {
		l    *lang.Language
		code string
	}{
		{lang.Python, "import sys\nprint(' '.join(sys.argv[1:]))\n"},
		{lang.JavaScript, "console.log(process.argv.slice(2).join(' '))\n"},
		{lang.Bash, "echo \"$@\"\n"},
	} {
		t.Run(tt.l.Name, func(t *testing.T) {
			t.Parallel()
			needInterpreter(t, tt.l)
			dir := workDir(t)
			writeFiles(t, dir, map[string]string{tt.l.CodeFile: tt.code})
			res := run(t, tt.l, dir, tt.l.CodeFile, []string{"a", "-b", "--c"})
			if got := string(res.Stdout); got != "a -b --c\n" {
				t.Errorf("stdout = %q (%s, stderr %q), want the args", got, res.Status, res.Stderr)
			}
		})
	}
}

// classifyCase runs files[file] with the real interpreter and checks what Classify
// says. Messages are matched by substring: their wording varies between versions.
type classifyCase struct {
	name   string
	file   string            // the file run; CodeFile when empty
	code   string            // its content
	files  map[string]string // other files in the work directory
	syntax bool
	diag   *api.Diagnostic // nil: no diagnostic
}

func TestClassifyPython(t *testing.T) {
	testClassify(t, lang.Python, []classifyCase{{
		name:   "syntax error",
		code:   `print("a"`,
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "main.py", Line: 1},
	}, {
		name:   "indentation error",
		code:   "if True:\nprint(1)\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "IndentationError", Message: "expected an indented block", File: "main.py", Line: 2},
	}, {
		name:   "tab error",
		code:   "if 1:\n\tx = 1\n        y = 2\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "TabError", Message: "inconsistent use of tabs", File: "main.py", Line: 3},
	}, {
		name:   "syntax error after valid lines",
		code:   "x = 1\nprint(x)\nz = x +\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "invalid syntax", File: "main.py", Line: 3},
	}, {
		name: "nested function",
		code: "def f():\n    return 1 / 0\n\ndef g():\n    return f()\n\ng()\n",
		diag: &api.Diagnostic{Type: "ZeroDivisionError", Message: "division by zero", File: "main.py", Line: 2},
	}, {
		name: "imported sibling",
		code: "import helper\nhelper.boom()\n",
		files: map[string]string{
			"helper.py": "def boom():\n    raise ValueError('from helper')\n",
		},
		diag: &api.Diagnostic{Type: "ValueError", Message: "from helper", File: "helper.py", Line: 2},
	}, {
		// main.py ran up to the import: a runtime error, located in the broken file.
		name: "imported sibling does not compile",
		code: "print('started')\nimport helper\n",
		files: map[string]string{
			"helper.py": "x = (\n",
		},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "helper.py", Line: 1},
	}, {
		name: "SyntaxError raised by compile",
		code: "x = 1\ncompile('(', 'x', 'exec')\n",
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "'(' was never closed", File: "main.py", Line: 2},
	}, {
		name: "library frames are skipped",
		code: "import json\njson.loads('{')\n",
		diag: &api.Diagnostic{Type: "json.decoder.JSONDecodeError", Message: "Expecting property name", File: "main.py", Line: 2},
	}, {
		name: "recursion",
		code: "def f():\n    f()\n\nf()\n",
		diag: &api.Diagnostic{Type: "RecursionError", Message: "maximum recursion depth exceeded", File: "main.py", Line: 2},
	}, {
		name: "chained exception",
		code: "try:\n    1 / 0\nexcept ZeroDivisionError:\n    raise KeyError('k')\n",
		diag: &api.Diagnostic{Type: "KeyError", Message: "'k'", File: "main.py", Line: 4},
	}, {
		name: "multi-line message",
		code: "raise ValueError('first\\nsecond')\n",
		diag: &api.Diagnostic{Type: "ValueError", Message: "first\nsecond", File: "main.py", Line: 1},
	}, {
		name: "memory error",
		code: "x = 'a' * (1 << 62)\n",
		diag: &api.Diagnostic{Type: "MemoryError", File: "main.py", Line: 1},
	}, {
		name: "exception group",
		code: "raise ExceptionGroup('two', [ValueError('v'), TypeError('t')])\n",
		diag: &api.Diagnostic{Type: "ExceptionGroup", Message: "two (2 sub-exceptions)", File: "main.py", Line: 1},
	}, {
		name: "prints SyntaxError",
		code: "import sys\nprint('SyntaxError: fake', file=sys.stderr)\nsys.exit(1)\n",
	}, {
		name: "exit without output",
		code: "import sys\nsys.exit(3)\n",
	}})
}

func TestClassifyJavaScript(t *testing.T) {
	testClassify(t, lang.JavaScript, []classifyCase{{
		name:   "syntax error",
		code:   `console.log(("a"`,
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "Unexpected end of input", File: "main.js", Line: 1},
	}, {
		name:   "syntax error after valid lines",
		code:   "let a = 1;\nconsole.log(a);\n  let c = );\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "Unexpected token ')'", File: "main.js", Line: 3, Column: 11},
	}, {
		name:   "module syntax error",
		file:   "main.mjs",
		code:   "let a = 1;\nexport default (;\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "Unexpected token ';'", File: "main.mjs", Line: 2, Column: 17},
	}, {
		// A static import is linked before any code runs.
		name: "imported module does not compile",
		file: "main.mjs",
		code: "import { x } from './helper.mjs';\nconsole.log(x);\n",
		files: map[string]string{
			"helper.mjs": "export const x = (;\n",
		},
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "Unexpected token ';'", File: "helper.mjs", Line: 1, Column: 19},
	}, {
		name: "nested function",
		code: "function f() {\n  return null.x;\n}\nfunction g() { return f(); }\ng();\n",
		diag: &api.Diagnostic{Type: "TypeError", Message: "Cannot read properties of null", File: "main.js", Line: 2, Column: 15},
	}, {
		name: "required sibling",
		code: "const h = require('./helper');\nh();\n",
		files: map[string]string{
			"helper.js": "module.exports = function h() {\n  throw new RangeError('from helper');\n};\n",
		},
		diag: &api.Diagnostic{Type: "RangeError", Message: "from helper", File: "helper.js", Line: 2, Column: 3},
	}, {
		// require runs while main.js runs: a runtime error, located in the broken file.
		name: "required sibling does not compile",
		code: "require('./helper');\n",
		files: map[string]string{
			"helper.js": "let x = (;\n",
		},
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "Unexpected token ';'", File: "helper.js", Line: 1, Column: 10},
	}, {
		name: "SyntaxError thrown by JSON.parse",
		code: "const s = '{';\nJSON.parse(s);\n",
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "JSON", File: "main.js", Line: 2, Column: 6},
	}, {
		name: "library frames are skipped",
		code: "require('fs').readFileSync('/nonexistent');\n",
		diag: &api.Diagnostic{Type: "Error", Message: "ENOENT", File: "main.js", Line: 1, Column: 15},
	}, {
		name: "recursion",
		code: "function f() { return f(); }\nf();\n",
		diag: &api.Diagnostic{Type: "RangeError", Message: "Maximum call stack size exceeded", File: "main.js", Line: 1, Column: 16},
	}, {
		name: "async function",
		code: "async function f() {\n  await null;\n  throw new TypeError('later');\n}\nf();\n",
		diag: &api.Diagnostic{Type: "TypeError", Message: "later", File: "main.js", Line: 3, Column: 9},
	}, {
		name: "multi-line message",
		code: "throw new Error('first\\nsecond');\n",
		diag: &api.Diagnostic{Type: "Error", Message: "first\nsecond", File: "main.js", Line: 1, Column: 1},
	}, {
		name: "throw a number",
		code: "let x = 1;\nthrow 42;\n",
		diag: &api.Diagnostic{Type: "Uncaught", Message: "42", File: "main.js", Line: 2, Column: 1},
	}, {
		name: "throw an object",
		code: "throw {a: 1};\n",
		diag: &api.Diagnostic{Type: "Uncaught", Message: "{ a: 1 }", File: "main.js", Line: 1, Column: 1},
	}, {
		name: "prints SyntaxError",
		code: "console.error('SyntaxError: fake');\nprocess.exit(1);\n",
	}, {
		name: "exit without output",
		code: "process.exit(3);\n",
	}})
}

func TestClassifyBash(t *testing.T) {
	testClassify(t, lang.Bash, []classifyCase{{
		name:   "syntax error",
		code:   "if then fi\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "syntax error near unexpected token `then'", File: "main.sh", Line: 1},
	}, {
		name:   "unexpected end of file",
		code:   "echo a\nif true; then\n  echo b\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "unexpected end of file", File: "main.sh", Line: 4},
	}, {
		name:   "syntax error after valid lines",
		code:   "echo a\necho b\nfi\n",
		syntax: true,
		diag:   &api.Diagnostic{Type: "SyntaxError", Message: "unexpected token `fi'", File: "main.sh", Line: 3},
	}, {
		name: "nested function",
		code: "f() {\n  g\n}\ng() {\n  no_such_command\n}\nf\n",
		diag: &api.Diagnostic{Type: "CommandNotFound", Message: "no_such_command: command not found", File: "main.sh", Line: 5},
	}, {
		name: "sourced sibling",
		code: "source ./helper.sh\n",
		files: map[string]string{
			"helper.sh": "echo in helper\nno_such_command\n",
		},
		diag: &api.Diagnostic{Type: "CommandNotFound", Message: "no_such_command: command not found", File: "helper.sh", Line: 2},
	}, {
		name: "syntax error in eval",
		code: "eval 'if then'\n",
	}, {
		name: "unbound variable",
		code: "set -u\necho \"$nope\"\n",
		diag: &api.Diagnostic{Type: "UnboundVariable", Message: "nope: unbound variable", File: "main.sh", Line: 2},
	}, {
		name: "prints SyntaxError",
		code: "echo 'SyntaxError: fake' >&2\nexit 1\n",
	}, {
		name: "prints a syntax error but exits 1",
		code: "echo \"main.sh: line 1: syntax error near unexpected token \\`then'\" >&2\nexit 1\n",
		diag: &api.Diagnostic{Type: "SyntaxError", Message: "syntax error", File: "main.sh", Line: 1},
	}, {
		name: "exit without output",
		code: "exit 3\n",
	}})
}

func testClassify(t *testing.T, l *lang.Language, cases []classifyCase) {
	needInterpreter(t, l)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := tt.file
			if file == "" {
				file = l.CodeFile
			}
			dir := workDir(t)
			writeFiles(t, dir, tt.files)
			writeFiles(t, dir, map[string]string{file: tt.code})
			res := run(t, l, dir, file, nil)
			if res.Status != proc.StatusExitError {
				t.Fatalf("run: %s, want exit_error", res.Status)
			}
			v := l.Classify(lang.Outcome{
				File: file, WorkDir: dir,
				ExitCode: res.ExitCode, Signal: res.Signal, Stdout: res.Stdout, Stderr: res.Stderr,
			})
			if v.SyntaxError != tt.syntax || !diagMatches(v.Diagnostic, tt.diag) {
				t.Errorf("Classify = %v %s, want %v %s\nexit %d, stderr:\n%s",
					v.SyntaxError, show(v.Diagnostic), tt.syntax, show(tt.diag), res.ExitCode, res.Stderr)
			}
		})
	}
}

// diagMatches compares all fields but Message, which want only has to be part of.
func diagMatches(got, want *api.Diagnostic) bool {
	if got == nil || want == nil {
		return got == want
	}
	g, w := *got, *want
	g.Message, w.Message = "", ""
	return g == w && strings.Contains(got.Message, want.Message)
}

func show(d *api.Diagnostic) string {
	if d == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", *d)
}

func needInterpreter(t *testing.T, l *lang.Language) {
	t.Helper()
	if _, err := os.Stat(l.Interpreter); err != nil {
		t.Skipf("no %s: %v", l.Interpreter, err)
	}
}

// workDir returns a fresh directory to play /work. Symbolic links are resolved, as the
// interpreters resolve them in the paths they print.
func workDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, code := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// run runs file in dir as a sandbox would: through Args, in the work directory, with
// a minimal environment plus the language's Env and extra.
func run(t *testing.T, l *lang.Language, dir, file string, args []string, extra ...string) *proc.Result {
	t.Helper()
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	for _, k := range slices.Sorted(maps.Keys(l.Env)) {
		env = append(env, k+"="+l.Env[k])
	}
	argv := l.Args(file, args)
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	c := &proc.Cmd{Path: argv[0], Args: argv, Dir: dir, Env: append(env, extra...), Timeout: runTimeout}
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatalf("run %q: %v", argv, err)
	}
	return res
}

func name(l *lang.Language) string {
	if l == nil {
		return ""
	}
	return l.Name
}
