package server_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
)

var testClient = &mcp.Implementation{Name: "runbox-test", Version: "v0.0.0"}

// mcpSession connects a Go SDK client to s's MCP server over an in-memory pipe.
func mcpSession(t *testing.T, s *server.Server) *mcp.ClientSession {
	t.Helper()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := s.MCP().Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(testClient, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callRunCode calls run_code with args and decodes the structured result, when there
// is one.
func callRunCode(t *testing.T, cs *mcp.ClientSession, args map[string]any) (*mcp.CallToolResult, *api.RunResult) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_code", Arguments: args})
	if err != nil {
		t.Fatalf("run_code %v: a protocol error: %v", args, err)
	}
	if res.StructuredContent == nil {
		return res, nil
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var rr api.RunResult
	if err := json.Unmarshal(b, &rr); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	return res, &rr
}

// text joins a tool result's text contents.
func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func TestMCPListTools(t *testing.T) {
	s, _ := newServer(t, server.Config{MaxLimits: sandbox.Limits{WallTime: 5 * time.Second}})
	cs := mcpSession(t, s)
	if got := cs.InitializeResult().ServerInfo.Name; got != "runbox" {
		t.Errorf("server name %q", got)
	}
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tool := range res.Tools {
		tools[tool.Name] = tool
	}
	run, langs := tools["run_code"], tools["list_languages"]
	if len(tools) != 2 || run == nil || langs == nil {
		t.Fatalf("tools %v, want run_code and list_languages", slices.Collect(maps.Keys(tools)))
	}
	for _, want := range []string{"no network", "fresh", "nothing persists", "up to 5s", "256MiB"} {
		if !strings.Contains(run.Description, want) {
			t.Errorf("run_code's description lacks %q:\n%s", want, run.Description)
		}
	}
	in, _ := json.Marshal(run.InputSchema)
	out, _ := json.Marshal(run.OutputSchema)
	for _, want := range []string{`"required":["language","code"]`, `"timeout_ms"`, `"stdin"`, "at most 5000", "python (or py"} {
		if !strings.Contains(string(in), want) {
			t.Errorf("run_code's input schema lacks %s: %s", want, in)
		}
	}
	for _, want := range []string{`"stdout"`, `"wall_time_ms"`, `"syntax_error"`, `"diagnostic"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run_code's output schema lacks %s: %s", want, out)
		}
	}
	if langs.Annotations == nil || !langs.Annotations.ReadOnlyHint {
		t.Errorf("list_languages is not marked read-only: %+v", langs.Annotations)
	}
}

func TestMCPRunCode(t *testing.T) {
	s, _ := newServer(t, server.Config{MaxLimits: sandbox.Limits{WallTime: 5 * time.Second}})
	cs := mcpSession(t, s)
	for _, tc := range []struct {
		name   string
		args   map[string]any
		status api.Status
		check  func(t *testing.T, r *api.RunResult, text string)
	}{
		{"ok", map[string]any{"language": "python", "code": "import sys\nprint(sys.stdin.read().upper())", "stdin": "hi"}, api.StatusOK,
			func(t *testing.T, r *api.RunResult, text string) {
				if r.Stdout != "HI\n" || *r.ExitCode != 0 || !strings.Contains(text, "status: ok, exit code 0") || !strings.Contains(text, "stdout:\nHI\n") {
					t.Errorf("%+v\n%s", r, text)
				}
			}},
		{"alias", map[string]any{"language": "js", "code": "console.log(6*7)"}, api.StatusOK,
			func(t *testing.T, r *api.RunResult, text string) {
				if r.Language != "javascript" || r.Stdout != "42\n" {
					t.Errorf("%+v", r)
				}
			}},
		{"syntax error", map[string]any{"language": "python", "code": "x = 1\nprint((x\n"}, api.StatusSyntaxError,
			func(t *testing.T, r *api.RunResult, text string) {
				if r.Diagnostic == nil || r.Diagnostic.Type != "SyntaxError" || r.Diagnostic.Line != 2 {
					t.Errorf("diagnostic %+v", r.Diagnostic)
				}
				if !strings.Contains(text, "diagnostic: SyntaxError at main.py line 2") {
					t.Errorf("text lacks the diagnostic:\n%s", text)
				}
			}},
		{"runtime error", map[string]any{"language": "python", "code": "print('before')\n1/0"}, api.StatusRuntimeError,
			func(t *testing.T, r *api.RunResult, text string) {
				if *r.ExitCode != 1 || r.Diagnostic == nil || r.Diagnostic.Type != "ZeroDivisionError" || r.Diagnostic.Line != 2 {
					t.Errorf("%+v %+v", r, r.Diagnostic)
				}
				for _, want := range []string{"status: runtime_error, exit code 1", "diagnostic: ZeroDivisionError at main.py line 2", "stdout:\nbefore\n", "Traceback"} {
					if !strings.Contains(text, want) {
						t.Errorf("text lacks %q:\n%s", want, text)
					}
				}
			}},
		{"bytes and a long stderr", map[string]any{"language": "python", "code": "import sys\nsys.stdout.buffer.write(b'\\xff')\nsys.stderr.write('y' * 40000)"}, api.StatusOK,
			func(t *testing.T, r *api.RunResult, text string) {
				if r.Stdout != "\xff" || len(r.Stderr) != 40000 {
					t.Errorf("stdout %q, %d bytes of stderr", r.Stdout, len(r.Stderr))
				}
				for _, want := range []string{"stdout (not UTF-8; base64):\n/w==\n", "stderr:\nyyy", "[… 7232 more bytes in the structured result's stderr]"} {
					if !strings.Contains(text, want) {
						t.Errorf("text lacks %q", want)
					}
				}
			}},
		{"timeout", map[string]any{"language": "python", "code": "import time\nprint('start', flush=True)\ntime.sleep(30)", "timeout_ms": 700}, api.StatusTimeout,
			func(t *testing.T, r *api.RunResult, text string) {
				if r.Limit != api.LimitWall || r.Limits.WallTime != 700*time.Millisecond || r.Signal != "SIGKILL" || r.Stdout != "start\n" {
					t.Errorf("%+v", r)
				}
				if !strings.Contains(text, "status: timeout, signal SIGKILL (the wall time limit of 700ms fired)") {
					t.Errorf("text:\n%s", text)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, r := callRunCode(t, cs, tc.args)
			if res.IsError || r == nil {
				t.Fatalf("a tool error for a program's verdict: %s", text(res))
			}
			if r.Status != tc.status {
				t.Fatalf("status %s, want %s: %+v\n%s", r.Status, tc.status, r, text(res))
			}
			tc.check(t, r, text(res))
		})
	}
}

// Bad input is a tool error that names what is wrong, and runs nothing.
func TestMCPRunCodeBadInput(t *testing.T) {
	s, ts := newServer(t, server.Config{MaxLimits: sandbox.Limits{WallTime: 5 * time.Second}})
	cs := mcpSession(t, s)
	for _, tc := range []struct {
		name string
		args map[string]any
		msg  string
	}{
		{"timeout over the maximum", map[string]any{"language": "python", "code": "print(1)", "timeout_ms": 6000}, "timeout_ms 6000 exceeds this server's maximum 5000"},
		{"absurd timeout", map[string]any{"language": "python", "code": "print(1)", "timeout_ms": int64(1) << 60}, "timeout_ms 9223372036854 exceeds this server's maximum 5000"},
		{"negative timeout", map[string]any{"language": "python", "code": "print(1)", "timeout_ms": -1}, "timeout_ms -1 is negative"},
		{"unknown language", map[string]any{"language": "cobol", "code": "x"}, `unknown language "cobol"`},
		{"no code", map[string]any{"language": "python"}, "code"},
		{"empty code", map[string]any{"language": "python", "code": ""}, "without code"},
		{"unknown field", map[string]any{"language": "python", "code": "print(1)", "memory": 1}, "memory"},
		{"wrong type", map[string]any{"language": "python", "code": "print(1)", "timeout_ms": "soon"}, "timeout_ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, r := callRunCode(t, cs, tc.args)
			if !res.IsError || r != nil || !strings.Contains(text(res), tc.msg) {
				t.Errorf("IsError %v, structured %+v, text %q; want a tool error containing %q", res.IsError, r, text(res), tc.msg)
			}
		})
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `runbox_runs_total{api="mcp"`) {
		t.Errorf("bad input ran something:\n%s", b)
	}
}

func TestMCPListLanguages(t *testing.T) {
	s, _ := newServer(t, server.Config{})
	cs := mcpSession(t, s)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_languages"})
	if err != nil || res.IsError {
		t.Fatalf("%v %v", err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var got server.Languages
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	versions := map[string]string{}
	for _, l := range got.Languages {
		versions[l.Name] = l.Version
	}
	if !strings.HasPrefix(versions["python"], "3.") || versions["javascript"] == "" || versions["bash"] == "" {
		t.Errorf("languages %s", b)
	}
	if txt := text(res); !strings.Contains(txt, "python "+versions["python"]+" (aliases: ") {
		t.Errorf("text:\n%s", txt)
	}
}

// bearer adds a token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// The streamable HTTP endpoint is behind the server's token, like every other.
func TestMCPHTTP(t *testing.T) {
	_, ts := newServer(t, server.Config{Token: "s3cret"})
	connect := func(token string) (*mcp.ClientSession, error) {
		hc := &http.Client{Transport: bearer{token, http.DefaultTransport}}
		return mcp.NewClient(testClient, nil).Connect(t.Context(),
			&mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	}
	if cs, err := connect("wrong"); err == nil {
		cs.Close()
		t.Fatal("connected with a wrong token")
	}
	cs, err := connect("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, r := callRunCode(t, cs, map[string]any{"language": "python", "code": "print(6*7)"})
	if res.IsError || r == nil || r.Status != api.StatusOK || r.Stdout != "42\n" {
		t.Fatalf("%+v\n%s", r, text(res))
	}
	res, r = callRunCode(t, cs, map[string]any{"language": "bash", "code": "echo oops >&2; exit 3"})
	if res.IsError || r == nil || r.Status != api.StatusRuntimeError || *r.ExitCode != 3 || !strings.Contains(text(res), "stderr:\noops\n") {
		t.Fatalf("%+v\n%s", r, text(res))
	}

	// A run ends when the client that wants its result goes away.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_code", Arguments: map[string]any{"language": "bash", "code": "sleep 30"}}); err == nil {
		t.Fatal("a call past its context's end succeeded")
	}
	waitGate(t, ts.URL, 0, 0)
}

// waitGate waits until the server at url has running runs and waiting ones.
func waitGate(t *testing.T, url string, running, waiting int) {
	t.Helper()
	var ready struct{ Running, Waiting int }
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&ready)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ready.Running == running && ready.Waiting == waiting {
			return
		}
	}
	t.Fatalf("after 5s, %d runs and %d waiting, want %d and %d", ready.Running, ready.Waiting, running, waiting)
}

// With every slot and queue place taken, run_code answers a tool error at once; a
// draining server runs nothing new.
func TestMCPOverloaded(t *testing.T) {
	s, ts := newServer(t, server.Config{Running: 1, Queue: 1})
	slow := map[string]any{"language": "bash", "code": "sleep 1.5"}
	var wg sync.WaitGroup
	verdicts := make([]string, 2)
	for i := range 2 {
		cs := mcpSession(t, s)
		wg.Go(func() {
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_code", Arguments: slow})
			if err != nil {
				verdicts[i] = err.Error()
				return
			}
			verdicts[i] = strings.SplitN(text(res), ",", 2)[0]
		})
	}
	waitGate(t, ts.URL, 1, 1) // both admitted: one runs, one waits
	cs := mcpSession(t, s)
	start := time.Now()
	res, r := callRunCode(t, cs, map[string]any{"language": "bash", "code": "true"})
	if !res.IsError || r != nil || !strings.Contains(text(res), "overloaded") || time.Since(start) > time.Second {
		t.Errorf("third call after %v: IsError %v %q", time.Since(start), res.IsError, text(res))
	}
	wg.Wait()
	if verdicts[0] != "status: ok" || verdicts[1] != "status: ok" {
		t.Errorf("the admitted runs: %q, want ok twice", verdicts)
	}

	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	res, _ = callRunCode(t, cs, map[string]any{"language": "bash", "code": "true"})
	if !res.IsError || !strings.Contains(text(res), "shutting down") {
		t.Errorf("after Shutdown: IsError %v %q", res.IsError, text(res))
	}
}

// ServeMCPStdio serves a client over a pipe pair, as runbox mcp does over its stdin
// and stdout, and returns when the client hangs up or the context ends.
func TestMCPStdio(t *testing.T) {
	s, ts := newServer(t, server.Config{})
	pipe := func() (r, w *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		return r, w
	}
	serve := func(ctx context.Context) (*mcp.ClientSession, chan error) {
		inR, inW := pipe()   // client → server
		outR, outW := pipe() // server → client
		done := make(chan error, 1)
		go func() {
			err := server.ServeMCPStdio(ctx, s, inR, outW)
			outW.Close() // as when runbox mcp exits
			done <- err
		}()
		cs, err := mcp.NewClient(testClient, nil).Connect(t.Context(), &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return cs, done
	}
	wait := func(done chan error) error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("ServeMCPStdio did not return")
			return nil
		}
	}

	cs, done := serve(t.Context())
	res, r := callRunCode(t, cs, map[string]any{"language": "python", "code": "print(6*7)"})
	if res.IsError || r == nil || r.Stdout != "42\n" {
		t.Fatalf("%+v\n%s", r, text(res))
	}
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(tools.Tools) != 2 {
		t.Fatalf("%v %v", tools, err)
	}
	cs.Close() // closes the server's stdin
	if err := wait(done); err != nil {
		t.Errorf("ServeMCPStdio after the client hung up: %v, want nil", err)
	}

	// The end of the context ends the session and the run in progress.
	ctx, cancel := context.WithCancel(t.Context())
	cs, done = serve(ctx)
	defer cs.Close()
	go cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_code", Arguments: map[string]any{"language": "bash", "code": "sleep 30"}})
	waitGate(t, ts.URL, 1, 0)
	cancel()
	if err := wait(done); err != context.Canceled {
		t.Errorf("ServeMCPStdio after its context ended: %v, want context.Canceled", err)
	}
	waitGate(t, ts.URL, 0, 0)
}

// The official MCP TypeScript SDK's client lists the tools, runs code and lists the
// languages over streamable HTTP, with the bearer token.
func TestMCPNodeClient(t *testing.T) {
	const dir = "testdata/js"
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules/@modelcontextprotocol/sdk/package.json"))
	}
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("node or the MCP TypeScript SDK is missing (%v): scripts/test.sh installs them", err)
		}
		t.Fatalf("node or the MCP TypeScript SDK is missing under CI: %v", err)
	}
	_, ts := newServer(t, server.Config{Token: "s3cret"})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "mcp.mjs", ts.URL+"/mcp")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOX_TOKEN=s3cret")
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node mcp.mjs: %v\n%s", err, stderr.String())
	}
	type content struct{ Type, Text string }
	var got struct {
		Server struct{ Name string }
		Tools  []struct {
			Name         string
			OutputSchema map[string]any
		}
		Run struct {
			IsError           bool
			Content           []content
			StructuredContent api.RunResult
		}
		Languages struct {
			IsError           bool
			StructuredContent server.Languages
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var names []string
	for _, tool := range got.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if got.Server.Name != "runbox" || !slices.Equal(names, []string{"list_languages", "run_code"}) {
		t.Errorf("server %q, tools %v", got.Server.Name, names)
	}
	run := got.Run
	if run.IsError || run.StructuredContent.Status != api.StatusOK || run.StructuredContent.Stdout != "42\n" ||
		len(run.Content) != 1 || run.Content[0].Type != "text" || !strings.Contains(run.Content[0].Text, "42") {
		t.Errorf("run_code: %+v", run)
	}
	langs := got.Languages
	if langs.IsError || !slices.ContainsFunc(langs.StructuredContent.Languages, func(l api.Language) bool { return l.Name == "python" }) {
		t.Errorf("list_languages: %+v", langs)
	}
}
