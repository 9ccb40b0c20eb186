package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/docker/go-units"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/runner"
	"github.com/runboxhq/runbox/sandbox"
)

// maxTextOutput bounds each of stdout and stderr in the text summary of a run_code
// result; the structured result holds all the output the run kept.
const maxTextOutput = 32 << 10

// RunCodeInput is the input of the MCP tool run_code.
type RunCodeInput struct {
	Language  string `json:"language"`
	Code      string `json:"code"`
	Stdin     string `json:"stdin,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

// Languages is the output of the MCP tool list_languages. MCP wants an object.
type Languages struct {
	Languages []api.Language `json:"languages"`
}

// MCP returns an MCP server named "runbox" over s with two tools: run_code, which
// runs a program as POST /v1/runs does (same admission, same limits, one fresh
// sandbox per call), and list_languages. Each call returns a new MCP server; all of
// them share s's slots and queue.
//
// A program's failure (a syntax error, an exception, a timeout) is a normal tool
// result; a tool error (IsError) means bad input, an overloaded or draining server,
// or runbox's own failure (sandbox_error).
func (s *Server) MCP() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "runbox", Title: "runbox sandbox", Version: version()},
		&mcp.ServerOptions{Instructions: "runbox runs code in isolated, throwaway sandboxes without network. " +
			"Use run_code to execute a program and see its exact output and verdict; list_languages says which languages and versions there are."})
	mcp.AddTool(srv, &mcp.Tool{
		Name:        "run_code",
		Title:       "Run code in a sandbox",
		Description: s.runCodeDescription(),
		InputSchema: s.runCodeSchema(),
		// OutputSchema is set because the inferred one would miss the fields
		// api.RunResult's MarshalJSON adds.
		OutputSchema: runResultSchema(),
		Annotations:  &mcp.ToolAnnotations{DestructiveHint: new(false), OpenWorldHint: new(false)},
	}, s.runCode)
	mcp.AddTool(srv, &mcp.Tool{
		Name:        "list_languages",
		Title:       "List the languages of the sandbox",
		Description: "List the languages run_code accepts: each one's name, its aliases (also accepted as run_code's language) and the interpreter's version.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(false)},
	}, s.listLanguages)
	return srv
}

// mcpHandler serves MCP's streamable HTTP transport. It is stateless: every POST is
// a whole exchange, so no session outlives its request or piles up in memory, and a
// run ends with the request that asked for it.
func (s *Server) mcpHandler() http.Handler {
	srv := s.MCP()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
		MaxRequestBodyBytes:          s.cfg.MaxBody,
		// The SDK refuses a request reaching a loopback address with another Host, a
		// defence against DNS rebinding for servers without credentials. With a token
		// the token is the defence, and the check would refuse a reverse proxy on the
		// same host that forwards the public Host.
		DisableLocalhostProtection: s.cfg.Token != "",
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(withRunsEnd(r.Context(), r.Context())))
	})
}

// runsEndKey is the key of a context value: the context whose end ends the runs a
// session starts. The SDK gives tool handlers the values of the context a session
// was connected with but not its end (PropagateRequestCancellation works only from
// protocol version 2026-07-28 on), yet a run must stop when the client that wants
// its result is gone.
type runsEndKey struct{}

func withRunsEnd(ctx, end context.Context) context.Context {
	return context.WithValue(ctx, runsEndKey{}, end)
}

// ServeMCPStdio serves s's MCP server over newline-delimited JSON-RPC on in and out
// (the stdio transport: runbox mcp) until the client closes in or ctx ends. It
// returns nil when the client ends the session, ctx's error when ctx ends. Runs in
// progress are stopped when it returns; [Server.Shutdown] waits for them to be gone.
// Nothing else may write to out meanwhile.
func ServeMCPStdio(ctx context.Context, s *Server, in io.Reader, out io.Writer) error {
	t := &mcp.IOTransport{Reader: io.NopCloser(in), Writer: nopWriteCloser{out}, MaxLineLength: int(s.cfg.MaxBody)}
	end, cancel := context.WithCancel(ctx)
	defer cancel()
	err := s.MCP().Run(withRunsEnd(ctx, end), t)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// runCode is the tool run_code.
func (s *Server) runCode(ctx context.Context, _ *mcp.CallToolRequest, in RunCodeInput) (*mcp.CallToolResult, *api.RunResult, error) {
	spec, err := s.specFrom(api.RunRequest{Language: in.Language, Code: in.Code, Stdin: in.Stdin,
		Limits: api.Limits{WallTime: msDuration(in.TimeoutMS)}})
	if err != nil {
		return nil, nil, mcpInputError(err)
	}
	ticket, done, err := s.admitMCP()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.runsCtx, cancel)()
	if end, ok := ctx.Value(runsEndKey{}).(context.Context); ok {
		defer context.AfterFunc(end, cancel)()
	}
	res, err := s.run(ctx, ticket, spec, "mcp", nil)
	if res == nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, nil, fmt.Errorf("the run was not started: %w", err)
		}
		return nil, nil, fmt.Errorf("runbox could not run the code: %w", err)
	}
	out := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: summary(res)}},
		IsError: res.Status == sandbox.StatusSandboxError}
	return out, res, nil
}

// admitMCP is admit for a tool call: the same gate and drain, with the refusal as
// an error for the tool result instead of an HTTP answer.
func (s *Server) admitMCP() (ticket *runner.Ticket, done func(), err error) {
	t, done, err := s.enter()
	switch {
	case errors.Is(err, errDraining):
		return nil, nil, errors.New("runbox is shutting down and runs no new code")
	case err != nil:
		return nil, nil, errors.New("runbox is overloaded: every run slot is busy and the queue is full; retry in a few seconds")
	}
	return t, done, nil
}

// mcpInputError words a refused input for the model, naming run_code's field.
func mcpInputError(err error) error {
	var re *requestError
	switch {
	case errors.As(err, &re) && re.field == "limits.wall_time_ms":
		return errors.New("timeout_ms" + strings.TrimPrefix(re.msg, "limits.wall_time_ms"))
	case errors.Is(err, sandbox.ErrInvalidSpec):
		_, _, msg := errorAnswer(err)
		return errors.New("invalid input: " + msg)
	}
	return err
}

// listLanguages is the tool list_languages.
func (s *Server) listLanguages(context.Context, *mcp.CallToolRequest, any) (*mcp.CallToolResult, Languages, error) {
	langs := s.languages()
	var b strings.Builder
	for _, l := range langs {
		fmt.Fprintf(&b, "%s", l.Name)
		if l.Version != "" {
			fmt.Fprintf(&b, " %s", l.Version)
		}
		if len(l.Aliases) > 0 {
			fmt.Fprintf(&b, " (aliases: %s)", strings.Join(l.Aliases, ", "))
		}
		b.WriteByte('\n')
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}, Languages{langs}, nil
}

// defaultLimits are the limits of a run that asks for none.
func (s *Server) defaultLimits() sandbox.Limits {
	l, _ := s.limits(sandbox.Limits{})
	return l
}

func (s *Server) runCodeDescription() string {
	def, max := s.defaultLimits(), s.cfg.MaxLimits
	return fmt.Sprintf("Run a program in a fresh, isolated sandbox and get back what it did: "+
		"its status (ok, syntax_error, runtime_error, timeout, oom, output_limit, signaled), its exit code or signal, "+
		"stdout, stderr, and for an error in the code a diagnostic with the error type, message and line.\n\n"+
		"Every call gets a new sandbox, destroyed afterwards: nothing persists between calls (no files, variables or "+
		"installed packages), so send the whole program each time. The sandbox has no network: nothing can be "+
		"downloaded or installed, only the interpreter and what comes with it. The program runs in a writable work "+
		"directory, with stdin as given (else empty).\n\n"+
		"Limits of one run: %s of wall time by default (timeout_ms sets it, up to %s) and as much CPU time; "+
		"%s of memory; %d processes or threads; %s kept of each of stdout and stderr (more ends the run with "+
		"status output_limit); %s for files.\n\n"+
		"A program that fails is a normal result whose status says how; the tool reports an error only for bad "+
		"input, a busy server, or a failure of the sandbox itself.",
		seconds(def.WallTime), seconds(max.WallTime), units.BytesSize(float64(def.Memory)), def.Processes,
		units.BytesSize(float64(def.Stdout)), units.BytesSize(float64(def.TmpSize)))
}

func (s *Server) runCodeSchema() *jsonschema.Schema {
	var names []string
	for _, l := range lang.All() {
		n := l.Name
		if len(l.Aliases) > 0 {
			n += " (or " + strings.Join(l.Aliases, ", ") + ")"
		}
		names = append(names, n)
	}
	def, max := s.defaultLimits(), s.cfg.MaxLimits
	str := func(desc string) *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Description: desc} }
	return &jsonschema.Schema{
		Type:     "object",
		Required: []string{"language", "code"},
		Properties: map[string]*jsonschema.Schema{
			"language": str("The language of code: " + strings.Join(names, "; ") + "."),
			"code":     str("The whole program's source."),
			"stdin":    str("The program's standard input (default: empty)."),
			"timeout_ms": {Type: "integer", Description: fmt.Sprintf(
				"The wall time limit in milliseconds (default %d, at most %d); the CPU time limit follows it.",
				def.WallTime.Milliseconds(), max.WallTime.Milliseconds())},
		},
		PropertyOrder:        []string{"language", "code", "stdin", "timeout_ms"},
		AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}},
	}
}

// runResultSchema describes api.RunResult as its MarshalJSON writes it.
func runResultSchema() *jsonschema.Schema {
	s, err := jsonschema.For[api.RunResult](nil)
	if err != nil {
		panic(err) // a static type: a failure is a bug, seen by every test
	}
	str := func(desc string) *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Description: desc} }
	num := func(desc string) *jsonschema.Schema { return &jsonschema.Schema{Type: "number", Description: desc} }
	base64 := func() *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Enum: []any{"base64"}} }
	p := s.Properties
	p["status"].Description = "ok: exited 0; runtime_error: exited non-zero; syntax_error: the code did not parse; " +
		"timeout, oom, output_limit: a limit ended it (see limit); signaled: a signal ended it; " +
		"sandbox_error: runbox failed to run it (see error)."
	p["status"].Enum = []any{api.StatusOK, api.StatusRuntimeError, api.StatusSyntaxError, api.StatusTimeout,
		api.StatusOOM, api.StatusOutputLimit, api.StatusSignaled, api.StatusSandboxError}
	p["stdout"] = str("What the program wrote to stdout (base64 when stdout_encoding says so).")
	p["stdout_encoding"] = base64()
	p["stderr"] = str("What the program wrote to stderr (base64 when stderr_encoding says so).")
	p["stderr_encoding"] = base64()
	p["wall_time_ms"] = num("The run's wall time.")
	p["cpu_time_ms"] = num("The CPU time of all the run's processes.")
	s.Required = append(s.Required, "stdout", "stderr", "wall_time_ms", "cpu_time_ms")
	lim := p["limits"]
	lim.Properties["wall_time_ms"] = &jsonschema.Schema{Type: "integer"}
	lim.Properties["cpu_time_ms"] = &jsonschema.Schema{Type: "integer"}
	return s
}

// summary is a run_code result in words, for a model that reads only the text.
func summary(r *api.RunResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status: %s", r.Status)
	switch {
	case r.ExitCode != nil:
		fmt.Fprintf(&b, ", exit code %d", *r.ExitCode)
	case r.Signal != "":
		fmt.Fprintf(&b, ", signal %s", r.Signal)
	}
	switch r.Limit {
	case api.LimitWall:
		fmt.Fprintf(&b, " (the wall time limit of %v fired)", r.Limits.WallTime)
	case api.LimitCPU:
		fmt.Fprintf(&b, " (the CPU time limit of %v fired)", r.Limits.CPUTime)
	case api.LimitMemory:
		fmt.Fprintf(&b, " (over the memory limit of %s)", units.BytesSize(float64(r.Limits.Memory)))
	case api.LimitStdout:
		fmt.Fprintf(&b, " (stdout over its limit of %s)", units.BytesSize(float64(r.Limits.Stdout)))
	case api.LimitStderr:
		fmt.Fprintf(&b, " (stderr over its limit of %s)", units.BytesSize(float64(r.Limits.Stderr)))
	}
	if r.Status != api.StatusSandboxError {
		fmt.Fprintf(&b, ", wall time %v", r.WallTime.Round(100*time.Microsecond))
	}
	b.WriteByte('\n')
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", r.Error)
	}
	if d := r.Diagnostic; d != nil {
		b.WriteString("diagnostic: ")
		if d.Type != "" {
			b.WriteString(d.Type)
		}
		if d.File != "" || d.Line > 0 {
			b.WriteString(" at")
			if d.File != "" {
				b.WriteString(" " + d.File)
			}
			if d.Line > 0 {
				fmt.Fprintf(&b, " line %d", d.Line)
			}
			if d.Column > 0 {
				fmt.Fprintf(&b, " column %d", d.Column)
			}
		}
		if d.Message != "" {
			b.WriteString(": " + d.Message)
		}
		if d.Hint != "" {
			b.WriteString(" (" + d.Hint + ")")
		}
		b.WriteByte('\n')
	}
	stream(&b, "stdout", r.Stdout, r.StdoutBytes, r.StdoutTruncated)
	stream(&b, "stderr", r.Stderr, r.StderrBytes, r.StderrTruncated)
	return b.String()
}

// stream writes one output stream of a run to b, within maxTextOutput.
func stream(b *strings.Builder, name, out string, written int64, truncated bool) {
	if out == "" && written == 0 {
		fmt.Fprintf(b, "%s: (empty)\n", name)
		return
	}
	text, enc := api.EncodeText(out)
	fmt.Fprintf(b, "%s", name)
	if enc != "" {
		fmt.Fprintf(b, " (not UTF-8; %s)", enc)
	}
	if truncated {
		fmt.Fprintf(b, " (truncated: the program wrote %d bytes, %d kept)", written, len(out))
	}
	b.WriteString(":\n")
	if len(text) > maxTextOutput {
		cut := maxTextOutput
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		fmt.Fprintf(b, "%s\n[… %d more bytes in the structured result's %s]\n", text[:cut], len(text)-cut, name)
		return
	}
	b.WriteString(text)
	if !strings.HasSuffix(text, "\n") {
		b.WriteByte('\n')
	}
}

// msDuration converts milliseconds, saturating instead of overflowing so that an
// absurd value is refused as too large rather than wrapping around.
func msDuration(ms int64) time.Duration {
	switch {
	case ms > math.MaxInt64/int64(time.Millisecond):
		return math.MaxInt64
	case ms < math.MinInt64/int64(time.Millisecond):
		return math.MinInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// seconds writes d as a model reads it best: 10s, 60s, 0.5s.
func seconds(d time.Duration) string { return fmt.Sprintf("%gs", d.Seconds()) }

// version is runbox's module version, as the build recorded it.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
