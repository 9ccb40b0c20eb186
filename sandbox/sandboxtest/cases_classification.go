package sandboxtest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

// codeFiles are the files inline code is written to, by language.
var codeFiles = map[string]string{python: "main.py", javascript: "main.js", bash: "main.sh"}

func (s *suite) classificationCases() []*hostileCase {
	return []*hostileCase{
		{
			id: "J1", name: "syntax_error",
			// The interpreters exit 1, 1 and 2, as for runtime errors. Bash runs what
			// precedes the error.
			code: rawProgs("x = 1\nprint(\"a\"\ny = 2\n",
				"const x = 1;\nconsole.log((\"a\";\nconsole.log(\"b\");\n",
				"echo start\nif then fi\necho after\n"),
			check: func(t *testing.T, o *outcome) {
				wantDiagnostic(t, o, sandbox.StatusSyntaxError, map[string]int{python: 1, javascript: 1, bash: 2}[o.variant], "SyntaxError", "", 2)
				wantStdout(t, o, map[string]string{bash: "start\n"}[o.variant])
			},
		},
		{
			id: "J1", name: "syntax_error_at_end_of_input",
			code: rawProgs("print(\"a\"\n", "console.log((\"a\"\n", "if then fi\n"),
			check: func(t *testing.T, o *outcome) {
				wantDiagnostic(t, o, sandbox.StatusSyntaxError, map[string]int{python: 1, javascript: 1, bash: 2}[o.variant], "SyntaxError", "", 0)
			},
		},
		{
			id: "J2", name: "runtime_error",
			code: rawProgs("x = 1\nraise ValueError(\"boom\")\n",
				"const x = 1;\nthrow new TypeError(\"boom\");\n",
				"echo start\nno_such_command_sbt\n"),
			check: func(t *testing.T, o *outcome) {
				switch o.variant {
				case python:
					wantDiagnostic(t, o, sandbox.StatusRuntimeError, 1, "ValueError", "boom", 2)
				case javascript:
					wantDiagnostic(t, o, sandbox.StatusRuntimeError, 1, "TypeError", "boom", 2)
				case bash:
					wantDiagnostic(t, o, sandbox.StatusRuntimeError, 127, "", "command not found", 2)
				}
			},
		},
		{
			id: "J2", name: "exit_code",
			code: rawProgs("import sys\nsys.exit(3)\n", "process.exit(3);\n", "exit 3\n"),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusRuntimeError, 3)
			},
		},
		{
			id: "J3", name: "segfault",
			// Signals sent to oneself may land on another thread of Node's: the marker
			// waits.
			code: progs(`import ctypes
ctypes.string_at(0)
escaped("survived SIGSEGV")
`, `process.kill(process.pid, 'SIGSEGV');
setTimeout(() => escaped('survived SIGSEGV'), 1000);
`, `kill -SEGV $$
escaped "survived SIGSEGV"
`),
			check: func(t *testing.T, o *outcome) {
				wantSignal(t, o, "SIGSEGV")
				if strings.Contains(o.Stderr, "Segmentation fault") {
					t.Errorf("a shell reported the segfault (stderr %q): the program must not run under a wrapper", clip(o.Stderr))
				}
			},
		},
		signalCase("sigfpe", "SIGFPE", progs(`import signal
os.kill(os.getpid(), signal.SIGFPE)
escaped("survived SIGFPE")
`, `process.kill(process.pid, 'SIGFPE');
setTimeout(() => escaped('survived SIGFPE'), 1000);
`, `kill -FPE $$
escaped "survived SIGFPE"
`), sandbox.Limits{}),
		signalCase("sigabrt", "SIGABRT", progs(`os.abort()
escaped("survived SIGABRT")
`, `process.abort();
`, `kill -ABRT $$
escaped "survived SIGABRT"
`), sandbox.Limits{}),
		// Writing past the file size limit. Python and Node ignore SIGXFSZ and see
		// EFBIG (D5); Python can be told otherwise, Node cannot.
		signalCase("sigxfsz", "SIGXFSZ", progs(`import signal
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
with open("/work/big", "wb") as f:
    f.write(b"\x01" * (2 << 20))
escaped("wrote past the file size limit")
`, "", `exec head -c 2097152 /dev/zero >/work/big
`), sandbox.Limits{FileSize: mib}),
		{
			id: "J5", name: "missing_interpreter",
			command: []string{"/nonexistent/sbt-interpreter", "main"},
			check: func(t *testing.T, o *outcome) {
				wantSandboxError(t, o, "/nonexistent/sbt-interpreter")
			},
		},
		{
			id: "J5", name: "bad_shebang",
			files:   []sandbox.File{{Name: "script", Content: []byte("#!/nonexistent/sbt-interpreter\necho \"ESC\"\"APED\"\n"), Executable: true}},
			command: []string{sandbox.WorkDir + "/script"},
			check: func(t *testing.T, o *outcome) {
				wantSandboxError(t, o, "")
			},
		},
		{
			id: "J7", name: "deep_recursion",
			// Python and Node stop the recursion themselves; Bash overflows its stack,
			// which takes it ~3.5 s of CPU: 30 s of wall time for a loaded machine.
			code: rawProgs("def f(n):\n    return f(n + 1)\n\n\nf(0)\n",
				"function f(n) {\n  return f(n + 1);\n}\nf(0);\n",
				"f() { f; }\nf\n"),
			limits: sandbox.Limits{WallTime: 30 * time.Second},
			check: func(t *testing.T, o *outcome) {
				switch o.variant {
				case python:
					wantDiagnostic(t, o, sandbox.StatusRuntimeError, 1, "RecursionError", "maximum recursion depth exceeded", 2)
				case javascript:
					wantDiagnostic(t, o, sandbox.StatusRuntimeError, 1, "RangeError", "Maximum call stack size exceeded", 2)
				case bash:
					wantSignal(t, o, "SIGSEGV")
				}
			},
		},
		{
			id: "J7", name: "stack_limit_applied",
			// Python 3.11 recurses in C through repr of nested lists, once its own
			// limit is out of the way. Node's stack limit is its own, below any rlimit.
			code: progs(`print(open("/proc/self/limits").read(), flush=True)
sys.setrecursionlimit(10 ** 6)
nested = []
for _ in range(10 ** 5):
    nested = [nested]
repr(nested)
escaped("survived a deep recursion on a 1 MiB stack")
`, "", `cat /proc/self/limits
f() { f; }
f
`),
			limits: sandbox.Limits{Stack: mib},
			check: func(t *testing.T, o *outcome) {
				wantSignal(t, o, "SIGSEGV")
				wantLimit(t, procLimits(o.Stdout), "Max stack size", strconv.Itoa(mib), "")
			},
		},
		{
			id: "J8", name: "nul_in_code", variants: langs,
			multi: func(t *testing.T, v string) {
				s.checkInvalid(t, sandbox.Spec{Language: v, Code: map[string]string{
					python: "print(1)\x00\n", javascript: "console.log(1)\x00\n", bash: "echo 1\x00\n"}[v]})
			},
		},
	}
}

// signalCase is a J4 case: the program ends by signal.
func signalCase(name, signal string, code map[string]string, limits sandbox.Limits) *hostileCase {
	return &hostileCase{
		id: "J4", name: name, code: code, limits: limits,
		check: func(t *testing.T, o *outcome) { wantSignal(t, o, signal) },
	}
}

// wantDiagnostic checks a syntax or runtime error: the status, the exit code, and the
// diagnostic's type (when typ is not empty), message (when msg is not empty, which it
// must contain) and line (when line is not 0). It must be in the code file.
func wantDiagnostic(t *testing.T, o *outcome, status sandbox.Status, code int, typ, msg string, line int) {
	t.Helper()
	wantExit(t, o, status, code)
	d := o.Diagnostic
	if d == nil {
		t.Fatalf("no diagnostic\n%s", describe(o))
	}
	if d.Type == "" || typ != "" && d.Type != typ {
		t.Errorf("diagnostic type %q, want %q", d.Type, or(typ, "one"))
	}
	if d.Message == "" || !strings.Contains(d.Message, msg) {
		t.Errorf("diagnostic message %q, want one containing %q", d.Message, msg)
	}
	if line != 0 && d.Line != line {
		t.Errorf("diagnostic line %d, want %d", d.Line, line)
	}
	if d.File != codeFiles[o.variant] {
		t.Errorf("diagnostic file %q, want %q", d.File, codeFiles[o.variant])
	}
}

// wantSandboxError checks a run that runbox failed to start, saying why (mentioning
// what when it is not empty).
func wantSandboxError(t *testing.T, o *outcome, what string) {
	t.Helper()
	if o.Status != sandbox.StatusSandboxError {
		t.Fatalf("status %s, want sandbox_error: runbox failed to start the program, which is not the program's fault\n%s", o.Status, describe(o))
	}
	if !strings.Contains(o.Error, what) {
		t.Errorf("error %q, want it to name %q", o.Error, what)
	}
	if o.Diagnostic != nil {
		t.Errorf("diagnostic %+v blames the user's code for runbox's failure", *o.Diagnostic)
	}
}
