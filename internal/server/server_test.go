package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/native"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backend returns a native backend, the real sandbox, closed when the test ends.
func backend(t testing.TB) (sandbox.Backend, error) {
	b, err := native.New(context.Background(), native.Config{})
	if err == nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, err
}

// newServer serves cfg over the native backend on a loopback port.
func newServer(t *testing.T, cfg server.Config) (*server.Server, *httptest.Server) {
	t.Helper()
	b, err := backend(t)
	if err != nil {
		t.Skipf("native backend unavailable: %v", err)
	}
	cfg.Backend = b
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// post sends body as JSON and decodes the answer into out (when not nil).
func post(t *testing.T, url, token, body string, out any) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, b)
		}
	}
	return resp
}

func TestRun(t *testing.T) {
	_, ts := newServer(t, server.Config{})
	var res api.RunResult
	resp := post(t, ts.URL+"/v1/runs", "", `{"language":"python","code":"import sys\nprint(sys.stdin.read().upper())","stdin":"hi"}`, &res)
	if resp.StatusCode != 200 || res.Status != api.StatusOK || res.Stdout != "HI\n" {
		t.Fatalf("%d %+v", resp.StatusCode, res)
	}
	// A program's failure is a 200 with its verdict.
	resp = post(t, ts.URL+"/v1/runs", "", `{"language":"javascript","code":"console.log((1"}`, &res)
	if resp.StatusCode != 200 || res.Status != api.StatusSyntaxError || res.Diagnostic == nil || res.Diagnostic.Line != 1 {
		t.Fatalf("%d %+v", resp.StatusCode, res)
	}
	// Files, base64 and an argument.
	resp = post(t, ts.URL+"/v1/runs", "", `{"command":["/bin/sh","run.sh","x"],"files":[{"name":"run.sh","content":"ZWNobyAiJDEkKGNhdCBkYXRhL2luKSIK","encoding":"base64"},{"name":"data/in","content":"y"}]}`, &res)
	if resp.StatusCode != 200 || res.Stdout != "xy\n" {
		t.Fatalf("%d %+v", resp.StatusCode, res)
	}
}

// A run's answer says in its Server-Timing header how long the backend's Run took
// and how long the handler did, on /v1/runs and Piston's execute.
func TestServerTiming(t *testing.T) {
	_, ts := newServer(t, server.Config{})
	format := regexp.MustCompile(`^wait;dur=(\d+\.\d{3}), run;dur=(\d+\.\d{3}), total;dur=(\d+\.\d{3})$`)
	for _, tc := range []struct{ path, body string }{
		{"/v1/runs", `{"command":["sleep","0.05"]}`},
		{"/api/v2/execute", `{"language":"bash","version":"*","files":[{"content":"sleep 0.05"}]}`},
	} {
		resp := post(t, ts.URL+tc.path, "", tc.body, nil)
		m := format.FindStringSubmatch(resp.Header.Get("Server-Timing"))
		if resp.StatusCode != 200 || m == nil {
			t.Fatalf("%s: %d, Server-Timing %q", tc.path, resp.StatusCode, resp.Header.Get("Server-Timing"))
		}
		run, _ := strconv.ParseFloat(m[2], 64)
		total, _ := strconv.ParseFloat(m[3], 64)
		if run < 50 || total < run {
			t.Errorf("%s: Server-Timing %q: want run ≥ 50 ms, total ≥ run", tc.path, m[0])
		}
		if resp.ContentLength <= 0 {
			t.Errorf("%s: no Content-Length", tc.path)
		}
	}
}

// Bad input is a 4xx that says what is wrong, and runs nothing.
func TestBadRequests(t *testing.T) {
	_, ts := newServer(t, server.Config{MaxBody: 4096, MaxLimits: sandbox.Limits{WallTime: 5 * time.Second}})
	for _, tc := range []struct {
		name, body string
		code       int
		field, msg string
	}{
		{"malformed", `{"language":`, 400, "", "malformed JSON"},
		{"two values", `{} {}`, 400, "", "more than one value"},
		{"wrong type", `{"language":3}`, 400, "language", "want string"},
		{"unknown language", `{"language":"cobol","code":"x"}`, 400, "", `unknown language "cobol"`},
		{"no code", `{"language":"python"}`, 400, "", "without code"},
		{"dotdot", `{"command":["true"],"files":[{"name":"../x","content":""}]}`, 400, "", `"../x"`},
		{"bad base64", `{"command":["true"],"files":[{"name":"a","content":"%%","encoding":"base64"}]}`, 400, "files[0].content", "invalid base64"},
		{"bad encoding", `{"command":["true"],"stdin":"x","stdin_encoding":"rot13"}`, 400, "stdin", "unknown encoding"},
		{"over the maximum", `{"command":["true"],"limits":{"wall_time_ms":6000}}`, 400, "limits.wall_time_ms", "exceeds this server's maximum 5000"},
		{"negative", `{"command":["true"],"limits":{"memory_bytes":-1}}`, 400, "limits.memory_bytes", "negative"},
		{"network", `{"command":["true"],"limits":{"network":"loopback"}}`, 400, "limits.network", "not allowed"},
		{"nul in code", `{"language":"python","code":"print(1)\u0000"}`, 400, "", "NUL"},
		{"too big", `{"command":["true"],"stdin":"` + strings.Repeat("x", 5000) + `"}`, 413, "", "over 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e api.Error
			resp := post(t, ts.URL+"/v1/runs", "", tc.body, &e)
			if resp.StatusCode != tc.code || e.Field != tc.field || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%d %+v, want %d field %q containing %q", resp.StatusCode, e, tc.code, tc.field, tc.msg)
			}
		})
	}
	resp, err := http.Get(ts.URL + "/v1/nothing")
	if err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown path: %v %v", resp.Status, err)
	}
}

// With every slot and queue place taken, a request is answered 429 at once.
func TestOverloaded(t *testing.T) {
	_, ts := newServer(t, server.Config{Running: 1, Queue: 1})
	slow := `{"command":["sleep","1.5"]}`
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() { codes[i] = post(t, ts.URL+"/v1/runs", "", slow, nil).StatusCode })
	}
	time.Sleep(300 * time.Millisecond) // both admitted: one runs, one waits
	start := time.Now()
	var e api.Error
	resp := post(t, ts.URL+"/v1/runs", "", `{"command":["true"]}`, &e)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || time.Since(start) > time.Second {
		t.Errorf("third request: %d Retry-After %q after %v: %+v", resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start), e)
	}
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Errorf("the admitted requests: %v, want 200 200", codes)
	}
}

func TestAuth(t *testing.T) {
	_, ts := newServer(t, server.Config{Token: "s3cret"})
	if resp := post(t, ts.URL+"/v1/runs", "", `{"command":["true"]}`, nil); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp := post(t, ts.URL+"/v1/runs", "wrong", `{"command":["true"]}`, nil); resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	var res api.RunResult
	if resp := post(t, ts.URL+"/v1/runs", "s3cret", `{"command":["true"]}`, &res); resp.StatusCode != 200 || res.Status != api.StatusOK {
		t.Errorf("token: %d %+v", resp.StatusCode, res)
	}
	if resp, err := http.Get(ts.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz without a token: %v %v", resp.Status, err)
	}
}

// A streamed run's lines arrive while the program still runs.
func TestStream(t *testing.T) {
	_, ts := newServer(t, server.Config{})
	body := `{"language":"python","code":"import time\nprint('one', flush=True)\ntime.sleep(1)\nprint('two')\nraise SystemExit(3)"}`
	start := time.Now()
	resp, err := http.Post(ts.URL+"/v1/runs?stream=1", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []api.Event
	var firstLine time.Duration
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		if e.Type == api.EventLine && firstLine == 0 {
			firstLine = time.Since(start)
		}
		events = append(events, e)
	}
	var texts []string
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		if e.Type == api.EventLine {
			texts = append(texts, e.Stream+":"+e.Text)
		}
	}
	if len(events) < 4 || events[0].Type != api.EventStarted || events[len(events)-1].Type != api.EventResult {
		t.Fatalf("events %+v", events)
	}
	if got := strings.Join(texts, "|"); got != "stdout:one|stdout:two" {
		t.Errorf("lines %q", got)
	}
	last := events[len(events)-1].Run
	if last == nil || last.Status != api.StatusRuntimeError || *last.ExitCode != 3 {
		t.Errorf("result %+v", last)
	}
	if total := time.Since(start); firstLine > total-700*time.Millisecond {
		t.Errorf("the first line came at %v of %v: not while the program ran", firstLine, total)
	}
}

// Shutdown lets a run in progress finish within the drain time, and stops one that
// would outlast it; no new run is admitted meanwhile.
func TestShutdown(t *testing.T) {
	s, ts := newServer(t, server.Config{})
	// A first run starts the warm template (as runbox serve's prewarm does), which
	// under -race took the 0.5 s run below past the 1.8 s of the drain.
	post(t, ts.URL+"/v1/runs", "", `{"language":"python","code":"pass"}`, nil)
	results := make(chan api.RunResult, 2)
	for _, code := range []string{"import time; time.sleep(0.5); print('done')", "import time; time.sleep(30)"} {
		go func() {
			var res api.RunResult
			post(t, ts.URL+"/v1/runs", "", `{"language":"python","code":"`+code+`"}`, &res)
			results <- res
		}()
	}
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Shutdown(ctx)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Shutdown: %v after %v, want the deadline's error soon after 1.5s", err, time.Since(start))
	}
	got := map[api.Status]int{}
	for range 2 {
		r := <-results
		got[r.Status]++
	}
	if got[api.StatusOK] != 1 || got[api.StatusTimeout] != 1 {
		t.Errorf("results %v, want one ok and one timeout", got)
	}
	if resp := post(t, ts.URL+"/v1/runs", "", `{"command":["true"]}`, nil); resp.StatusCode != 503 {
		t.Errorf("a run after Shutdown: %d, want 503", resp.StatusCode)
	}
	if resp, _ := http.Get(ts.URL + "/readyz"); resp.StatusCode != 503 {
		t.Errorf("readyz after Shutdown: %d", resp.StatusCode)
	}
}

func TestLanguagesAndMetrics(t *testing.T) {
	_, ts := newServer(t, server.Config{})
	resp, err := http.Get(ts.URL + "/v1/languages")
	if err != nil {
		t.Fatal(err)
	}
	var langs []api.Language
	json.NewDecoder(resp.Body).Decode(&langs)
	resp.Body.Close()
	names := map[string]string{}
	for _, l := range langs {
		names[l.Name] = l.Version
	}
	if !strings.HasPrefix(names["python"], "3.") || names["javascript"] == "" || names["bash"] == "" {
		t.Errorf("languages %+v", langs)
	}
	post(t, ts.URL+"/v1/runs", "", `{"command":["true"]}`, nil)
	resp, err = http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`runbox_runs_total{api="v1",status="ok"} `, "runbox_run_duration_seconds_bucket", "runbox_queue_depth 0", "runbox_runs_in_flight 0", "runbox_warm_pool_size "} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Serve stops on its context and no run outlives it.
func TestServe(t *testing.T) {
	b, err := backend(t)
	if err != nil {
		t.Skip(err)
	}
	s, err := server.New(server.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Serve(ctx, ln, s, s, 200*time.Millisecond) }()
	got := make(chan api.RunResult, 1)
	go func() {
		var res api.RunResult
		post(t, "http://"+ln.Addr().String()+"/v1/runs", "", `{"command":["sleep","30"]}`, &res)
		got <- res
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if r := <-got; r.Status != api.StatusTimeout {
		t.Errorf("the run cut by the shutdown: %+v", r)
	}
}
