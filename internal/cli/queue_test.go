package cli_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
)

// proc is a runbox process a test started: its stderr goes to a file, and it is
// killed and waited for when the test ends.
type proc struct {
	cmd    *exec.Cmd
	stderr string // the file
	done   chan struct{}
}

// log returns the end of the process's stderr.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.stderr)
	return tail(string(b))
}

// startRunbox starts `runbox ARGS...` (this test binary) and, with ready, waits for
// that line on its stdout.
func startRunbox(t *testing.T, ready string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], append([]string{"__runbox"}, args...)...), done: make(chan struct{})}
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.stderr, p.cmd.Stderr = f.Name(), f
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	if ready == "" {
		return p
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-lines:
			if l == ready {
				return p
			}
		case <-p.done:
			t.Fatalf("runbox %v exited before %q:\n%s", args, ready, p.log())
		case <-timeout:
			t.Fatalf("runbox %v: no %q after 30s:\n%s", args, ready, p.log())
		}
	}
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill() { p.cmd.Process.Signal(syscall.SIGKILL); <-p.done }

// appendRun is a bash program that appends its token to the file the test counts
// runs in (the host backend runs it as a plain process, so the file is the test's),
// and prints it.
func appendRun(file, token string, sleep string) api.SubmitRequest {
	code := fmt.Sprintf("echo %s >> %s; echo %s", token, file, token)
	if sleep != "" {
		code = "sleep " + sleep + "; " + code
	}
	return api.SubmitRequest{RunRequest: api.RunRequest{Language: "bash", Code: code}}
}

// countRuns returns how many times each token was appended to file.
func countRuns(t *testing.T, file string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := map[string]int{}
	for l := range strings.Lines(string(b)) {
		n[strings.TrimSpace(l)]++
	}
	return n
}

// submitAll submits reqs in batches of 100 and returns their ids in order.
func submitAll(t *testing.T, c *client.Client, reqs []api.SubmitRequest) []string {
	t.Helper()
	var ids []string
	for i := 0; i < len(reqs); i += 100 {
		got, err := c.SubmitBatch(context.Background(), reqs[i:min(i+100, len(reqs))])
		if err != nil {
			t.Fatalf("batch at %d: %v %+v", i, err, got)
		}
		for _, s := range got {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// doneCount reads the submissions and returns them with the number done.
func doneCount(t *testing.T, c *client.Client, ids []string) ([]api.Submission, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subs, err := c.Submissions(ctx, ids)
	if err != nil {
		t.Logf("read the submissions: %v", err)
		return nil, 0
	}
	n := 0
	for _, s := range subs {
		if s.State == api.SubmissionDone {
			n++
		}
	}
	return subs, n
}

// checkOnce asserts every submission has one result, its program ran at most once,
// and exactly once when its result is ok (with its own output); it returns the
// submissions that were lost with a worker (sandbox_error), and how many ran.
func checkOnce(t *testing.T, subs []api.Submission, tokens []string, runs map[string]int) (lost []api.Submission) {
	t.Helper()
	for i, s := range subs {
		tok := tokens[i]
		switch r := s.Result; {
		case s.State != api.SubmissionDone || r == nil:
			t.Errorf("submission %d (%s) has no result: %+v", i, s.ID, s)
		case runs[tok] > 1:
			t.Errorf("submission %d (%s) ran %d times", i, s.ID, runs[tok])
		case r.Status == api.StatusOK && (runs[tok] != 1 || r.Stdout != tok+"\n"):
			t.Errorf("submission %d (%s) ok, but ran %d times, stdout %q", i, s.ID, runs[tok], r.Stdout)
		case r.Status == api.StatusSandboxError:
			lost = append(lost, s)
		case r.Status != api.StatusOK:
			t.Errorf("submission %d (%s): %s %s", i, s.ID, r.Status, r.Error)
		}
	}
	return lost
}

// The proof of the queue: a NATS cluster of 3 nodes, an API node and 2 workers, each
// its own process. 1,000 short runs are submitted; a worker and a NATS node are
// SIGKILLed while they run. Every submission gets exactly one result; a program runs
// at most once (the file its runs append to says so), and exactly once when its
// result is ok; the only runs without an ok are those the killed worker had started
// (sandbox_error: not run again, as they may have run).
func TestQueueCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster test takes a minute")
	}
	const total, concurrency = 1000, 4
	dir := t.TempDir()
	runsFile := filepath.Join(dir, "runs")
	var clientURLs, routes []string
	for range 3 {
		clientURLs = append(clientURLs, freeAddr(t))
		routes = append(routes, "nats://"+freeAddr(t))
	}
	var nodes []*proc
	for i := range 3 {
		nodes = append(nodes, startRunbox(t, "ready", "nats-node", "--name", fmt.Sprintf("n%d", i+1),
			"--dir", filepath.Join(dir, fmt.Sprintf("n%d", i+1)), "--listen", clientURLs[i], "--cluster", "runbox-test",
			"--cluster-listen", strings.TrimPrefix(routes[i], "nats://"), "--routes", strings.Join(routes, ",")))
	}
	natsURL := "nats://" + strings.Join(clientURLs, ",nats://")
	start := time.Now()
	addr, _, apiErr := startServe(t, "", "--nats", natsURL, "--replicas", "3", "--ack-wait", "2s", "--backend", "host")
	t.Logf("API node ready after %v (JetStream cluster formed, queue set up)", time.Since(start).Round(time.Millisecond))
	var workers []*proc
	for range 2 {
		workers = append(workers, startRunbox(t, "", "worker", "--nats", natsURL, "--concurrency", fmt.Sprint(concurrency),
			"--backend", "host", "--drain", "10s"))
	}
	c, _ := client.New("http://"+addr, client.WithHTTPClient(&http.Client{Timeout: time.Minute}))

	var reqs []api.SubmitRequest
	var tokens []string
	for i := range total {
		tokens = append(tokens, fmt.Sprintf("run-%04d", i))
		reqs = append(reqs, appendRun(runsFile, tokens[i], ""))
	}
	start = time.Now()
	ids := submitAll(t, c, reqs)
	submitted := time.Since(start)

	var subs []api.Submission
	killedWorker, killedNode := false, false
	// The longest time without a submission done, after each kill.
	var stallWorker, stallNode time.Duration
	lastDone, lastAt := 0, time.Now()
	deadline := time.Now().Add(100 * time.Second)
	for {
		var done int
		subs, done = doneCount(t, c, ids)
		if done > lastDone {
			lastDone, lastAt = done, time.Now()
		}
		stall := time.Since(lastAt)
		if killedNode {
			stallNode = max(stallNode, stall)
		} else if killedWorker {
			stallWorker = max(stallWorker, stall)
		}
		if !killedWorker && done >= total/5 {
			workers[0].kill()
			killedWorker = true
			t.Logf("SIGKILLed worker 1 at %d/%d done", done, total)
		}
		if !killedNode && done >= total*2/5 {
			nodes[0].kill()
			killedNode = true
			t.Logf("SIGKILLed NATS node n1 at %d/%d done", done, total)
		}
		if done == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d done after 100s\nAPI:\n%s\nworker 2:\n%s", done, total, tail(apiErr.String()), workers[1].log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	runs := countRuns(t, runsFile)
	lost := checkOnce(t, subs, tokens, runs)
	ran := 0
	for _, tok := range tokens {
		ran += runs[tok]
	}
	for _, s := range lost {
		if !strings.Contains(s.Result.Error, "stopped before it reported") {
			t.Errorf("lost submission %s: %s", s.ID, s.Result.Error)
		}
	}
	if len(lost) > concurrency {
		t.Errorf("%d submissions lost with the killed worker, which held at most %d", len(lost), concurrency)
	}
	t.Logf("%d submissions: queued in %v, all done in %v (%.0f/s); %d programs ran once, none twice; %d lost with the killed worker "+
		"(sandbox_error, %d of them had run); longest time without progress: %v after the worker's SIGKILL, %v after the NATS node's",
		total, submitted.Round(time.Millisecond), took.Round(time.Millisecond), float64(total)/took.Seconds(), ran, len(lost),
		ran-(total-len(lost)), stallWorker.Round(100*time.Millisecond), stallNode.Round(100*time.Millisecond))
}

// The embedded queue keeps its submissions across a restart: a server SIGKILLed
// mid-queue runs the rest once restarted on the same data directory, and the
// results it had written are still there.
func TestQueueEmbeddedRestart(t *testing.T) {
	const total = 24
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runsFile := filepath.Join(dir, "runs")
	args := []string{"--backend", "host", "--workers", "1", "--data-dir", data, "--ack-wait", "1s"}
	addr, cmd, _ := startServe(t, "", args...)
	c, _ := client.New("http://" + addr)
	var reqs []api.SubmitRequest
	var tokens []string
	for i := range total {
		tokens = append(tokens, fmt.Sprintf("restart-%02d", i))
		reqs = append(reqs, appendRun(runsFile, tokens[i], "0.2"))
	}
	ids := submitAll(t, c, reqs)
	var before []api.Submission
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var done int
		if before, done = doneCount(t, c, ids); done >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no 3 submissions done in 30s")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	addr, _, stderr := startServe(t, "", args...)
	c, _ = client.New("http://" + addr)
	var subs []api.Submission
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var done int
		if subs, done = doneCount(t, c, ids); done == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d done 60s after the restart:\n%s", done, total, tail(stderr.String()))
		}
	}
	doneBefore := 0
	for i, b := range before {
		if b.State != api.SubmissionDone {
			continue
		}
		doneBefore++
		if a := subs[i]; a.Result == nil || *a.FinishedAt != *b.FinishedAt || a.Result.Stdout != b.Result.Stdout {
			t.Errorf("submission %d changed across the restart: %+v, was %+v", i, a, b)
		}
	}
	lost := checkOnce(t, subs, tokens, countRuns(t, runsFile))
	if len(lost) > 1 {
		t.Errorf("%d lost, but one worker ran one at a time: %+v", len(lost), lost)
	}
	t.Logf("%d done before the SIGKILL, the other %d after the restart (%d lost in progress)", doneBefore, total-doneBefore, len(lost))
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// SIGTERM drains a worker: it stops fetching, finishes the runs it holds, writes and
// acks their results, and exits 0; the submissions it did not take stay queued.
func TestWorkerDrain(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runsFile := filepath.Join(dir, "runs")
	addr, _, _ := startServe(t, "", "--backend", "host", "--workers", "0", "--data-dir", data)
	url, err := os.ReadFile(filepath.Join(data, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	w := startRunbox(t, "", "worker", "--nats", strings.TrimSpace(string(url)), "--concurrency", "2", "--backend", "host")
	c, _ := client.New("http://" + addr)
	tokens := []string{"drain-0", "drain-1", "drain-2"}
	var reqs []api.SubmitRequest
	for _, tok := range tokens {
		reqs = append(reqs, appendRun(runsFile, tok, "1"))
	}
	ids := submitAll(t, c, reqs)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		subs, _ := doneCount(t, c, ids)
		running := 0
		for _, s := range subs {
			if s.State == api.SubmissionRunning {
				running++
			}
		}
		if running == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not 2 running after 20s: %+v\n%s", subs, w.log())
		}
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the worker did not exit 10s after SIGTERM:\n%s", w.log())
	}
	if !w.cmd.ProcessState.Success() || !strings.Contains(w.log(), `"msg":"stopped"`) {
		t.Fatalf("worker exit %v:\n%s", w.cmd.ProcessState, w.log())
	}
	subs, done := doneCount(t, c, ids)
	if done != 2 {
		t.Fatalf("%d done after the drain, want the 2 it held: %+v", done, subs)
	}
	queued := 0
	for _, s := range subs {
		if s.State == api.SubmissionQueued {
			queued++
		} else if s.Result.Status != api.StatusOK {
			t.Errorf("drained run: %+v", s.Result)
		}
	}
	if queued != 1 {
		t.Errorf("%d still queued, want 1: %+v", queued, subs)
	}
}

func TestWorkerUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--nats URL is required"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--backend", "nosuch"}, "unknown backend"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--backend", "host"}, "connect to nats://127.0.0.1:1"},
	} {
		out, err := exec.Command(os.Args[0], append([]string{"__runbox", "worker"}, tc.args...)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 || !strings.Contains(string(out), tc.want) {
			t.Errorf("worker %v: %v\n%s\nwant exit 125 and %q", tc.args, err, out, tc.want)
		}
	}
}
