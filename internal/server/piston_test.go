package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
)

// pistonRuntime and pistonResult are Piston's wire types, as a client reads them.
type pistonRuntime struct {
	Language string   `json:"language"`
	Version  string   `json:"version"`
	Aliases  []string `json:"aliases"`
	Runtime  string   `json:"runtime"`
}

type pistonResult struct {
	Language string `json:"language"`
	Version  string `json:"version"`
	Run      struct {
		Stdout   string  `json:"stdout"`
		Stderr   string  `json:"stderr"`
		Output   string  `json:"output"`
		Code     *int    `json:"code"`
		Signal   *string `json:"signal"`
		Message  *string `json:"message"`
		Status   *string `json:"status"`
		CPUTime  int64   `json:"cpu_time"`
		WallTime int64   `json:"wall_time"`
		Memory   int64   `json:"memory"`
	} `json:"run"`
	Message string `json:"message"`
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestPistonRuntimes(t *testing.T) {
	_, ts := newServer(t, server.Config{})
	for _, path := range []string{"/api/v2/runtimes", "/api/v2/piston/runtimes"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var rts []pistonRuntime
		err = json.NewDecoder(resp.Body).Decode(&rts)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		got := map[string]pistonRuntime{}
		for _, rt := range rts {
			got[rt.Language] = rt
		}
		py, js, sh := got["python"], got["javascript"], got["bash"]
		if len(rts) != 3 || !strings.HasPrefix(py.Version, "3.") || js.Version == "" || sh.Version == "" {
			t.Errorf("%s: %+v", path, rts)
		}
		if !strings.Contains(strings.Join(py.Aliases, " "), "py") || py.Runtime != "" || js.Runtime != "node" {
			t.Errorf("%s: python %+v, javascript %+v", path, py, js)
		}
	}
}

func TestPistonExecute(t *testing.T) {
	_, ts := newServer(t, server.Config{})
	var res pistonResult
	// Stdin, arguments, a version prefix, an alias; output is stdout, then stderr.
	body := `{"language":"py","version":"3","files":[{"content":"import sys\nprint(sys.stdin.read().upper(), sys.argv[1:])\nprint('err', file=sys.stderr)\nprint('end')"}],` +
		`"stdin":"hi","args":["1","two"],"compile_timeout":10000,"run_timeout":3000,"compile_memory_limit":-1,"run_memory_limit":-1}`
	resp := post(t, ts.URL+"/api/v2/execute", "", body, &res)
	r := res.Run
	if resp.StatusCode != 200 || res.Language != "python" || !strings.HasPrefix(res.Version, "3.") {
		t.Fatalf("%d %+v", resp.StatusCode, res)
	}
	if r.Stdout != "HI ['1', 'two']\nend\n" || r.Stderr != "err\n" || r.Output != "HI ['1', 'two']\nend\nerr\n" {
		t.Errorf("stdout %q stderr %q output %q", r.Stdout, r.Stderr, r.Output)
	}
	if r.Code == nil || *r.Code != 0 || r.Signal != nil || r.Status != nil || r.Message != nil || r.WallTime <= 0 || r.Memory <= 0 {
		t.Errorf("run %+v", r)
	}

	// The first file runs, named by the language without a name, beside the others:
	// base64 and hex included.
	code := "import os\nprint(os.path.basename(__file__), open('data/in.txt').read(), open('file2.py').read())"
	body = `{"language":"python","version":"*","files":[{"content":"` + base64.StdEncoding.EncodeToString([]byte(code)) + `","encoding":"base64"},` +
		`{"name":"data/in.txt","content":"` + "68657820" + `","encoding":"hex"},{"content":"x = 1"}]}`
	resp = post(t, ts.URL+"/api/v2/execute", "", body, &res)
	if resp.StatusCode != 200 || res.Run.Stdout != "main.py hex  x = 1\n" || res.Run.Status != nil {
		t.Errorf("files: %d %+v", resp.StatusCode, res)
	}
}

// The program's failures are 200s with Piston's status, and a message that says why.
func TestPistonVerdicts(t *testing.T) {
	_, ts := newServer(t, server.Config{MaxLimits: sandbox.Limits{Stdout: 1000, Stderr: 1000}})
	for _, tc := range []struct {
		name, body string
		status     string
		code       int // -1: null
		signal     string
		msg1, msg2 string
		stdout     string
	}{
		{"runtime error", `{"language":"python","version":"*","files":[{"content":"print('before')\n1/0"}]}`,
			"RE", 1, "<nil>", "Exited with error status 1", "main.py line 2: ZeroDivisionError: division by zero", "before\n"},
		{"syntax error", `{"language":"javascript","version":"*","files":[{"name":"app.js","content":"console.log((1"}]}`,
			"RE", 1, "<nil>", "did not compile", "app.js line 1: SyntaxError", ""},
		{"timeout", `{"language":"python","version":"*","files":[{"content":"import time\nprint('start', flush=True)\ntime.sleep(10)"}],"run_timeout":1000}`,
			"TO", -1, "SIGKILL", "Time limit exceeded", "wall clock: 1000 ms", "start\n"},
		{"cpu time", `{"language":"javascript","version":"*","files":[{"content":"for (;;) {}"}],"run_cpu_time":300}`,
			"TO", -1, "SIGKILL", "Time limit exceeded", "CPU time: 300 ms", ""},
		{"stdout limit", `{"language":"python","version":"*","files":[{"content":"print('x' * 5000)"}]}`,
			"OL", -1, "SIGKILL", "stdout length exceeded", "1000 bytes", strings.Repeat("x", 1000)},
		{"stderr limit", `{"language":"bash","version":"*","files":[{"content":"head -c 5000 /dev/zero >&2"}]}`,
			"EL", -1, "SIGKILL", "stderr length exceeded", "1000 bytes", ""},
		{"signal", `{"language":"bash","version":"*","files":[{"content":"kill -SEGV $$"}]}`,
			"SG", -1, "SIGSEGV", "Caught fatal signal 11", "SIGSEGV", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res pistonResult
			resp := post(t, ts.URL+"/api/v2/execute", "", tc.body, &res)
			r := res.Run
			code := -1
			if r.Code != nil {
				code = *r.Code
			}
			msg := str(r.Message)
			if resp.StatusCode != 200 || str(r.Status) != tc.status || code != tc.code || str(r.Signal) != tc.signal ||
				!strings.Contains(msg, tc.msg1) || !strings.Contains(msg, tc.msg2) || r.Stdout != tc.stdout {
				t.Errorf("%d status %s code %d signal %s message %q stdout %q stderr %q; want status %s code %d signal %s message with %q and %q, stdout %q",
					resp.StatusCode, str(r.Status), code, str(r.Signal), msg, r.Stdout, r.Stderr, tc.status, tc.code, tc.signal, tc.msg1, tc.msg2, tc.stdout)
			}
		})
	}
}

// Bad requests are 400s with Piston's {"message": …}, and run nothing.
func TestPistonBadRequests(t *testing.T) {
	_, ts := newServer(t, server.Config{MaxLimits: sandbox.Limits{WallTime: 5 * time.Second}})
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"bad version", `{"language":"python","version":"2.7","files":[{"content":"print(1)"}]}`, 400, "python-2.7 runtime is unknown: this server runs python 3."},
		{"version not a prefix by components", `{"language":"python","version":"3.1","files":[{"content":"print(1)"}]}`, 400, "python-3.1 runtime is unknown"},
		{"unknown language", `{"language":"cobol","version":"*","files":[{"content":"x"}]}`, 400, "cobol-* runtime is unknown: this server runs bash, javascript, python"},
		{"no language", `{"version":"*","files":[{"content":"x"}]}`, 400, "language is required"},
		{"no files", `{"language":"python","version":"*"}`, 400, "files is required as a non-empty array"},
		{"over the maximum", `{"language":"python","version":"*","files":[{"content":"x"}],"run_timeout":6000}`, 400, "run_timeout 6000 exceeds this server's maximum 5000"},
		{"cpu over the maximum", `{"language":"python","version":"*","files":[{"content":"x"}],"run_cpu_time":60001}`, 400, "run_cpu_time 60001 exceeds this server's maximum"},
		{"negative", `{"language":"python","version":"*","files":[{"content":"x"}],"run_memory_limit":-2}`, 400, "run_memory_limit -2 is negative"},
		{"too little memory", `{"language":"python","version":"*","files":[{"content":"x"}],"run_memory_limit":1000}`, 400, "run_memory_limit 1000 is below the minimum"},
		{"not a number", `{"language":"python","version":"*","files":[{"content":"x"}],"compile_timeout":"10s"}`, 400, "field compile_timeout: want int64"},
		{"bad base64", `{"language":"python","version":"*","files":[{"content":"%%","encoding":"base64"}]}`, 400, "files[0].content: invalid base64"},
		{"bad encoding", `{"language":"python","version":"*","files":[{"content":"x","encoding":"ucs2"}]}`, 400, `files[0].content: unknown encoding "ucs2"`},
		{"twice the same name", `{"language":"python","version":"*","files":[{"content":"x"},{"name":"main.py","content":"y"}]}`, 400, `input file "main.py" given twice`},
		{"malformed", `{"language":`, 400, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e map[string]any
			resp := post(t, ts.URL+"/api/v2/execute", "", tc.body, &e)
			msg, _ := e["message"].(string)
			if resp.StatusCode != tc.code || len(e) != 1 || !strings.Contains(msg, tc.msg) {
				t.Errorf("%d %v, want %d {\"message\"} containing %q", resp.StatusCode, e, tc.code, tc.msg)
			}
		})
	}
	var e map[string]any
	if resp := post(t, ts.URL+"/api/v2/packages", "", `{}`, &e); resp.StatusCode != 404 || e["message"] == nil {
		t.Errorf("unknown endpoint: %d %v", resp.StatusCode, e)
	}
}

// The runs are counted under the Piston API's name.
func TestPistonMetrics(t *testing.T) {
	_, ts := newServer(t, server.Config{})
	post(t, ts.URL+"/api/v2/execute", "", `{"language":"bash","version":"*","files":[{"content":"true"}]}`, nil)
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `runbox_runs_total{api="piston",status="ok"} 1`; !bytes.Contains(b, []byte(want)) {
		t.Errorf("metrics lack %q", want)
	}
}

// piston-client, the npm client of Piston, works against the server unchanged.
func TestPistonClient(t *testing.T) {
	const node, script = "/usr/bin/node", "testdata/js/piston.mjs"
	for _, need := range []string{node, "testdata/js/node_modules/piston-client/package.json"} {
		if _, err := os.Stat(need); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%v under CI, where scripts/test.sh installs node and the npm clients", err)
			}
			t.Skipf("%v (scripts/test.sh installs the npm clients)", err)
		}
	}
	_, ts := newServer(t, server.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, ts.URL)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.Bytes())
	}
	var got struct {
		Runtimes                            []pistonRuntime
		Python, JavaScript, Config, Failure pistonResult
		Unknown                             map[string]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var pyVersion string
	for _, rt := range got.Runtimes {
		if rt.Language == "python" {
			pyVersion = rt.Version
		}
	}
	if len(got.Runtimes) != 3 || !strings.HasPrefix(pyVersion, "3.") {
		t.Errorf("runtimes %+v", got.Runtimes)
	}
	// The client's defaults: arguments 1 2 3, the version runtimes listed.
	if r := got.Python; r.Version != pyVersion || r.Run.Stdout != "Hello World! ['1', '2', '3']\n" || r.Run.Code == nil || *r.Run.Code != 0 || r.Run.Status != nil {
		t.Errorf("python: %+v", r)
	}
	if r := got.JavaScript; r.Language != "javascript" || r.Run.Output != "Hello from node\n" {
		t.Errorf("javascript: %+v", r)
	}
	if r := got.Config; r.Language != "python" || r.Run.Stdout != "from a file, from stdin ['a', 'b']\n" {
		t.Errorf("config object: %+v", r)
	}
	if r := got.Failure; str(r.Run.Status) != "RE" || !strings.Contains(str(r.Run.Message), "ZeroDivisionError") || !strings.Contains(r.Run.Stderr, "Traceback") {
		t.Errorf("failure: %+v", r)
	}
	if msg, _ := got.Unknown["message"].(string); !strings.Contains(msg, "cobol-* runtime is unknown") {
		t.Errorf("unknown language: %v", got.Unknown)
	}
}
