package server

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/docker/go-units"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
)

// The Piston-compatible API serves the two endpoints of Piston's v2 API that run
// code, so that Piston clients work unchanged:
//
//	GET  /api/v2/runtimes   the languages, with the installed interpreters' versions
//	POST /api/v2/execute    one run: Piston's request in, Piston's result out
//
// It also answers under /api/v2/piston/, the paths of the public Piston at emkc.org,
// which clients written for that instance hard-code.
//
// Where it differs from Piston:
//
//   - Every language is interpreted, so there is no "compile" stage in a result, and
//     compile_timeout, compile_cpu_time and compile_memory_limit are checked to be
//     numbers and otherwise ignored. A syntax error is a run with status "RE", as in
//     Piston's interpreted languages.
//   - A version may be "*", empty, or the installed version or a prefix of it by
//     components ("3", "3.11", "3.x"); Piston takes any semver range.
//   - -1 in run_timeout, run_cpu_time or run_memory_limit means the server's default,
//     as Piston's -1 means its configured one; other values are checked against the
//     server's maxima like every request's limits.
//   - Files of any encoding may run, where Piston insists on one UTF-8 file.
//   - "output" is stdout followed by stderr. Piston appends the pieces of the two
//     pipes in the order they reach it, but that order is a race between two readers:
//     measured on the native backend, a program that prints a line and then raises
//     had its traceback first in 4 runs of 30. Concatenation is always right for that
//     common case and the same every time. The exact order of writes needs one
//     stream (sandbox.Spec.Combined), which would lose "stdout" and "stderr" apart.
//   - Request errors are 400 (413 for a body over the cap) with Piston's
//     {"message": …}. The server's 401 (bearer token), 429 (busy) and 503
//     (shutting down) keep their usual body; a Piston client goes by the status code.
//   - When runbox fails to run the code (sandbox_error) the answer is 500 with the
//     result, status "XX", and a top-level "message" saying what failed, where Piston
//     sends a bare 500.

// pistonAPI labels the Piston API's runs in metrics and logs.
const pistonAPI = "piston"

func (s *Server) pistonRoutes() {
	for _, prefix := range []string{"/api/v2/", "/api/v2/piston/"} {
		s.mux.HandleFunc("GET "+prefix+"runtimes", s.getPistonRuntimes)
		s.mux.HandleFunc("POST "+prefix+"execute", s.postPistonExecute)
	}
	s.mux.HandleFunc("/api/v2/", func(w http.ResponseWriter, r *http.Request) {
		writePistonError(w, http.StatusNotFound, "no such endpoint: %s %s (this server has GET /api/v2/runtimes and POST /api/v2/execute)", r.Method, r.URL.Path)
	})
}

// pistonRuntime is an element of GET /api/v2/runtimes.
type pistonRuntime struct {
	Language string   `json:"language"`
	Version  string   `json:"version"`
	Aliases  []string `json:"aliases"`
	// Runtime names the program that runs the language when that is not the
	// language's own name ("node" for javascript).
	Runtime string `json:"runtime,omitempty"`
}

// pistonRequest is the body of POST /api/v2/execute.
type pistonRequest struct {
	Language string       `json:"language"`
	Version  string       `json:"version"`
	Files    []pistonFile `json:"files"`
	Stdin    string       `json:"stdin"`
	Args     []string     `json:"args"`
	// RunTimeout is the wall time limit in milliseconds, RunCPUTime the CPU time
	// limit in milliseconds, RunMemoryLimit the memory limit in bytes; 0 or -1 means
	// the default.
	RunTimeout     int64 `json:"run_timeout"`
	RunCPUTime     int64 `json:"run_cpu_time"`
	RunMemoryLimit int64 `json:"run_memory_limit"`
	// The compile limits have no stage to apply to; they are decoded so that a value
	// that is not a number is refused, as Piston does.
	CompileTimeout     int64 `json:"compile_timeout"`
	CompileCPUTime     int64 `json:"compile_cpu_time"`
	CompileMemoryLimit int64 `json:"compile_memory_limit"`
}

// pistonFile is a file of a pistonRequest. The first file of a request is the one
// that runs.
type pistonFile struct {
	Name     string `json:"name"`
	Content  string `json:"content"`
	Encoding string `json:"encoding"` // "utf8" (or empty), "base64" or "hex"
}

// pistonResult is the answer of POST /api/v2/execute.
type pistonResult struct {
	Language string      `json:"language"`
	Version  string      `json:"version"`
	Run      pistonStage `json:"run"`
	// Message says what failed on runbox's side, with status "XX" only.
	Message string `json:"message,omitempty"`
}

// pistonStage is what the program did, in Piston's words. Code is set when the
// program exited, Signal when a signal ended it (SIGKILL when a limit did); Status is
// nil when it exited 0.
type pistonStage struct {
	Stdout   string  `json:"stdout"`
	Stderr   string  `json:"stderr"`
	Output   string  `json:"output"`
	Code     *int    `json:"code"`
	Signal   *string `json:"signal"`
	Message  *string `json:"message"`
	Status   *string `json:"status"`
	CPUTime  int64   `json:"cpu_time"`  // milliseconds
	WallTime int64   `json:"wall_time"` // milliseconds
	Memory   int64   `json:"memory"`    // peak, in bytes
}

// Piston's statuses.
const (
	pistonRuntimeError = "RE" // exited non-zero
	pistonSignaled     = "SG" // a signal ended it (the memory limit's SIGKILL included)
	pistonTimeout      = "TO"
	pistonStdoutLimit  = "OL"
	pistonStderrLimit  = "EL"
	pistonInternal     = "XX"
)

// getPistonRuntimes is GET /api/v2/runtimes.
func (s *Server) getPistonRuntimes(w http.ResponseWriter, r *http.Request) {
	versions := map[string]string{}
	for _, l := range s.languages() {
		versions[l.Name] = l.Version
	}
	out := []pistonRuntime{}
	for _, l := range lang.All() {
		out = append(out, pistonRuntime{Language: l.Name, Version: versions[l.Name],
			Aliases: append([]string{}, l.Aliases...), Runtime: runtimeName(l)})
	}
	writeJSON(w, http.StatusOK, out)
}

// runtimeName is the name of l's interpreter when it is not l's own, with or without
// a version number ("node" for javascript, nothing for python3).
func runtimeName(l *lang.Language) string {
	base := path.Base(l.Interpreter)
	if strings.TrimRight(base, "0123456789.") == l.Name {
		return ""
	}
	return base
}

// postPistonExecute is POST /api/v2/execute: 200 for every verdict of the program,
// 500 when runbox failed to run it.
func (s *Server) postPistonExecute(w http.ResponseWriter, r *http.Request) {
	tm := startTiming()
	ticket, done := s.admit(w)
	if ticket == nil {
		return
	}
	defer done()
	var req pistonRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		answerPistonError(w, err)
		return
	}
	l, version, err := s.pistonRuntime(req.Language, req.Version)
	if err != nil {
		answerPistonError(w, err)
		return
	}
	spec, err := s.pistonSpec(l, req)
	if err != nil {
		answerPistonError(w, err)
		return
	}
	ctx, cancel := s.runContext(r)
	defer cancel()
	res, err := s.run(ctx, ticket, spec, pistonAPI, tm)
	if res == nil {
		answerPistonError(w, err)
		return
	}
	out := pistonResult{Language: l.Name, Version: version, Run: pistonStageOf(res)}
	code := http.StatusOK
	if res.Status == sandbox.StatusSandboxError {
		code = http.StatusInternalServerError
		out.Message = *out.Run.Message
	}
	writeTimedJSON(w, code, out, tm)
}

// pistonRuntime finds the language and checks the version a request asks for,
// returning the installed version.
func (s *Server) pistonRuntime(name, version string) (*lang.Language, string, error) {
	if name == "" {
		return nil, "", badRequest("language", "language is required as a string")
	}
	asked := version
	if asked == "" {
		asked = "*"
	}
	l, ok := lang.Lookup(name)
	if !ok {
		return nil, "", badRequest("language", "%s-%s runtime is unknown: this server runs %s",
			name, asked, strings.Join(sandbox.Languages(), ", "))
	}
	var installed string
	for _, ll := range s.languages() {
		if ll.Name == l.Name {
			installed = ll.Version
		}
	}
	if !versionMatches(version, installed) {
		have := installed
		if have == "" {
			have = "an interpreter whose version could not be read"
		}
		return nil, "", badRequest("version", "%s-%s runtime is unknown: this server runs %s %s (ask for it, a prefix of it, or \"*\")",
			name, asked, l.Name, have)
	}
	return l, installed, nil
}

// versionMatches reports whether the asked version selects the installed one: "*"
// or empty, the version itself, or a prefix of it by components in which "x" or "*"
// matches any component ("3", "3.11", "3.x").
func versionMatches(asked, installed string) bool {
	asked = strings.TrimPrefix(strings.TrimSpace(asked), "v")
	if asked == "" {
		return true
	}
	have := strings.Split(installed, ".")
	want := strings.Split(asked, ".")
	if len(want) > len(have) {
		return false
	}
	for i, w := range want {
		if w == "*" || w == "x" || w == "X" {
			return true
		}
		if w != have[i] {
			return false
		}
	}
	return true
}

// pistonLimitFields names in Piston's words the limits fields that Server.limits
// names in the v1 API's.
var pistonLimitFields = map[string]string{
	"limits.wall_time_ms": "run_timeout",
	"limits.cpu_time_ms":  "run_cpu_time",
	"limits.memory_bytes": "run_memory_limit",
}

// pistonSpec turns a request into a spec, within the server's maxima.
func (s *Server) pistonSpec(l *lang.Language, req pistonRequest) (sandbox.Spec, error) {
	spec := sandbox.Spec{Language: l.Name, Args: req.Args, Stdin: []byte(req.Stdin)}
	if len(req.Files) == 0 {
		return spec, badRequest("files", "files is required as a non-empty array; the first file is the code that runs")
	}
	for i, f := range req.Files {
		name := f.Name
		switch {
		case name != "":
		case i == 0:
			name = l.CodeFile
		default:
			ext := ".code" // Piston's
			if len(l.Extensions) > 0 {
				ext = l.Extensions[0]
			}
			name = fmt.Sprintf("file%d%s", i, ext)
		}
		b, err := decodePistonFile(f)
		if err != nil {
			return spec, badRequest(fmt.Sprintf("files[%d].content", i), "files[%d].content: %v", i, err)
		}
		spec.Files = append(spec.Files, sandbox.File{Name: name, Content: b})
	}
	spec.CodeFile = spec.Files[0].Name

	orDefault := func(v int64) int64 {
		if v == -1 {
			return 0
		}
		return v
	}
	mem := orDefault(req.RunMemoryLimit)
	if mem > 0 && mem < sandbox.MinMemory {
		return spec, badRequest("run_memory_limit", "run_memory_limit %d is below the minimum %d bytes (%s)",
			mem, int64(sandbox.MinMemory), units.BytesSize(sandbox.MinMemory))
	}
	lim, err := s.limits(sandbox.Limits{
		WallTime: time.Duration(orDefault(req.RunTimeout)) * time.Millisecond,
		CPUTime:  time.Duration(orDefault(req.RunCPUTime)) * time.Millisecond,
		Memory:   mem,
	})
	if re, ok := errors.AsType[*requestError](err); ok {
		if name, ok := pistonLimitFields[re.field]; ok {
			return spec, &requestError{code: re.code, field: name, msg: strings.ReplaceAll(re.msg, re.field, name)}
		}
	}
	if err != nil {
		return spec, err
	}
	spec.Limits = lim
	// Validation in one place: the sandbox's, before a slot is taken.
	if _, err := sandbox.Prepare(spec); err != nil {
		return spec, err
	}
	return spec, nil
}

// decodePistonFile returns a file's bytes, in the encodings of Node's Buffer that
// Piston clients use.
func decodePistonFile(f pistonFile) ([]byte, error) {
	switch strings.ToLower(f.Encoding) {
	case "", "utf8", "utf-8":
		return []byte(f.Content), nil
	case "base64":
		// Node's decoder takes either alphabet, with or without padding.
		s := strings.TrimRight(f.Content, "=")
		b, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			if b2, err2 := base64.RawURLEncoding.DecodeString(s); err2 == nil {
				return b2, nil
			}
			return nil, fmt.Errorf("invalid base64: %w", err)
		}
		return b, nil
	case "hex":
		b, err := hex.DecodeString(f.Content)
		if err != nil {
			return nil, fmt.Errorf("invalid hex: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown encoding %q (want utf8, base64 or hex)", f.Encoding)
	}
}

// pistonStageOf renders a result in Piston's words.
func pistonStageOf(res *sandbox.Result) pistonStage {
	st := pistonStage{Stdout: res.Stdout, Stderr: res.Stderr, Output: res.Stdout + res.Stderr, Code: res.ExitCode,
		CPUTime: res.CPUTime.Milliseconds(), WallTime: res.WallTime.Milliseconds(), Memory: res.PeakMemory}
	if res.Signal != "" {
		st.Signal = &res.Signal
	}
	status, message := pistonVerdict(res)
	if status != "" {
		st.Status, st.Message = &status, &message
	}
	return st
}

// pistonVerdict returns the Piston status of a result and a sentence that says why;
// both are empty for a program that exited 0. The sentences start as Piston's (those
// of isolate, and its own for the output limits) and add runbox's details.
func pistonVerdict(res *sandbox.Result) (status, message string) {
	exited := func() string {
		if res.ExitCode == nil {
			return "Exited with an error"
		}
		return fmt.Sprintf("Exited with error status %d", *res.ExitCode)
	}
	switch res.Status {
	case sandbox.StatusOK:
		return "", ""
	case sandbox.StatusRuntimeError:
		return pistonRuntimeError, exited() + diagnosticText(res.Diagnostic)
	case sandbox.StatusSyntaxError:
		return pistonRuntimeError, exited() + ", the code did not compile" + diagnosticText(res.Diagnostic)
	case sandbox.StatusTimeout:
		if res.Limit == api.LimitCPU {
			return pistonTimeout, fmt.Sprintf("Time limit exceeded (CPU time: %d ms)", res.Limits.CPUTime.Milliseconds())
		}
		return pistonTimeout, fmt.Sprintf("Time limit exceeded (wall clock: %d ms)", res.Limits.WallTime.Milliseconds())
	case sandbox.StatusOOM:
		return pistonSignaled, fmt.Sprintf("Memory limit exceeded (%d bytes): killed with SIGKILL", res.Limits.Memory)
	case sandbox.StatusOutputLimit:
		if res.Limit == api.LimitStderr {
			return pistonStderrLimit, fmt.Sprintf("stderr length exceeded (%d bytes)", res.Limits.Stderr)
		}
		return pistonStdoutLimit, fmt.Sprintf("stdout length exceeded (%d bytes)", res.Limits.Stdout)
	case sandbox.StatusSignaled:
		if sig, err := proc.ParseSignal(res.Signal); err == nil {
			return pistonSignaled, fmt.Sprintf("Caught fatal signal %d (%s)", int(sig), res.Signal)
		}
		return pistonSignaled, "Caught fatal signal " + res.Signal
	default:
		msg := res.Error
		if msg == "" {
			msg = fmt.Sprintf("runbox could not run the code (%s)", res.Status)
		}
		return pistonInternal, msg
	}
}

// diagnosticText is ": FILE line N: TYPE: MESSAGE (HINT)", as much of it as d has,
// or nothing without d.
func diagnosticText(d *sandbox.Diagnostic) string {
	if d == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(": ")
	switch {
	case d.File != "" && d.Line > 0:
		fmt.Fprintf(&b, "%s line %d: ", d.File, d.Line)
	case d.File != "":
		fmt.Fprintf(&b, "%s: ", d.File)
	case d.Line > 0:
		fmt.Fprintf(&b, "line %d: ", d.Line)
	}
	if d.Type != "" {
		b.WriteString(d.Type)
		if d.Message != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(d.Message)
	if d.Hint != "" {
		fmt.Fprintf(&b, " (%s)", d.Hint)
	}
	return b.String()
}

// answerPistonError writes err as Piston does, {"message": …}: a request error with
// its code, a refused spec as 400, the end of the request's context as 503, anything
// else as 500.
func answerPistonError(w http.ResponseWriter, err error) {
	code, _, msg := errorAnswer(err)
	writePistonError(w, code, "%s", msg)
}

func writePistonError(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, map[string]string{"message": fmt.Sprintf(format, a...)})
}
