package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
	"github.com/runboxhq/runbox/internal/loadgen"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServe starts `runbox serve` on a free loopback address with args and waits
// until it is ready; it is stopped with SIGTERM when the test ends.
func startServe(t *testing.T, token string, args ...string) (addr string, cmd *exec.Cmd, stderr *bytes.Buffer) {
	t.Helper()
	addr = freeAddr(t)
	stderr = &bytes.Buffer{}
	if !slices.Contains(args, "--nats") && !slices.Contains(args, "--data-dir") {
		// The embedded queue's own directory: not the user's, not another test's.
		args = append(args, "--data-dir", t.TempDir())
	}
	cmd = exec.Command(os.Args[0], append([]string{"__runbox", "serve", "--addr", addr}, args...)...)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	c, _ := client.New("http://"+addr, client.WithToken(token))
	deadline := time.Now().Add(20 * time.Second)
	for c.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("runbox serve not ready after 20s:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, cmd, stderr
}

// `runbox serve` serves runs until SIGTERM, then lets the run in progress finish and
// exits 0.
func TestServe(t *testing.T) {
	addr, cmd, stderr := startServe(t, "", "--drain", "10s")
	c, _ := client.New("http://" + addr)
	ctx := context.Background()
	res, err := c.Run(ctx, api.RunRequest{Language: "python", Code: "print('served')"})
	if err != nil || res.Stdout != "served\n" {
		t.Fatalf("%+v %v", res, err)
	}
	got := make(chan *api.RunResult, 1)
	go func() {
		r, _ := c.Run(ctx, api.RunRequest{Language: "python", Code: "import time; time.sleep(1); print('finished')"})
		got <- r
	}()
	time.Sleep(400 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v\n%s", err, stderr.String())
	}
	if r := <-got; r == nil || r.Stdout != "finished\n" {
		t.Errorf("the run in progress at SIGTERM: %+v", r)
	}
	if !strings.Contains(stderr.String(), `"msg":"listening"`) || !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("log:\n%s", stderr.String())
	}
}

func TestServeUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "not a loopback address: give a bearer token"},
		{[]string{"--max-memory", "1KiB"}, "--max-memory"},
		{[]string{"--backend", "nosuch"}, "unknown backend"},
		{[]string{"--image", "python=x"}, "need --backend docker"},
		{[]string{"extra"}, "unknown command"},
		{[]string{"--backend", "host", "--replicas", "9"}, "--replicas 9"},
		{[]string{"--backend", "host", "--max-queued-bytes", "lots"}, "--max-queued-bytes"},
		{[]string{"--backend", "host", "--nats", "nats://127.0.0.1:1", "--data-dir", "/tmp/x"}, "--data-dir is for the embedded queue"},
	} {
		out, err := exec.Command(os.Args[0], append([]string{"__runbox", "serve"}, tc.args...)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 || !strings.Contains(string(out), tc.want) {
			t.Errorf("serve %v: %v\n%s\nwant exit 125 and %q", tc.args, err, out, tc.want)
		}
	}
}

// The load test, short: 50 clients for 15 s of benign and hostile programs against
// `runbox serve`; no 5xx, no benign request lost, every verdict as expected, and the
// server's memory does not grow with the requests (bench/serve-load.sh is the long one).
func TestServeLoad(t *testing.T) {
	addr, cmd, _ := startServe(t, "")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c, _ := client.New("http://"+addr, client.WithHTTPClient(hc))
	ctx := context.Background()
	// Warm up, then take the memory the server settles at.
	loadgen.Run(ctx, loadgen.Config{Client: c, Clients: 8, Duration: 2 * time.Second})
	before := rssKiB(cmd.Process.Pid)
	rep := loadgen.Run(ctx, loadgen.Config{Client: c, Clients: 50, Duration: 15 * time.Second})
	after := rssKiB(cmd.Process.Pid)
	t.Logf("%sserver RSS %d KiB before, %d KiB after", rep, before, after)
	if rep.ServerErrors > 0 || rep.LostBenign > 0 || rep.Unexpected > 0 || rep.Done == 0 {
		t.Errorf("load test failed:\n%s", rep)
	}
	if after > before+64<<10 {
		t.Errorf("the server grew from %d KiB to %d KiB under load", before, after)
	}
}

func rssKiB(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// The real clients of the APIs against the real `runbox serve`: the npm piston-client
// and the official MCP TypeScript SDK (internal/server/testdata/js; scripts/test.sh
// installs them).
func TestServeWithNodeClients(t *testing.T) {
	js := "../server/testdata/js"
	if _, err := os.Stat(js + "/node_modules/piston-client/package.json"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v under CI, where scripts/test.sh installs the npm clients", err)
		}
		t.Skipf("npm clients not installed (npm ci --prefix internal/server/testdata/js): %v", err)
	}
	addr, _, _ := startServe(t, "tok", "--token", "tok")
	node := func(script, url string, env ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		n := exec.CommandContext(ctx, "/usr/bin/node", js+"/"+script, url)
		n.Env = append(os.Environ(), env...)
		out, err := n.CombinedOutput()
		if err != nil {
			t.Fatalf("node %s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	// piston-client sends no token: a server with one refuses it, as it should; the
	// Piston API is then reached through a token-less server below.
	mcpOut := node("mcp.mjs", "http://"+addr+"/mcp", "RUNBOX_TOKEN=tok")
	for _, want := range []string{`"run_code"`, `"list_languages"`, `42`, `"status":"ok"`} {
		if !strings.Contains(mcpOut, want) {
			t.Errorf("the MCP TypeScript client's output lacks %s:\n%s", want, mcpOut)
		}
	}

	open, _, _ := startServe(t, "")
	pistonOut := node("piston.mjs", "http://"+open)
	for _, want := range []string{"Hello World!", "Hello from", "from a file, from stdin", "ZeroDivisionError"} {
		if !strings.Contains(pistonOut, want) {
			t.Errorf("piston-client's output lacks %q:\n%s", want, pistonOut)
		}
	}
}
