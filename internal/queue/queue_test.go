package queue

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/host"
)

// openTest opens a queue on an embedded server in a temporary directory.
func openTest(t *testing.T, cfg Config) *Queue {
	t.Helper()
	s, err := StartServer(ServerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := s.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func submitOne(t *testing.T, q *Queue, job Job) {
	t.Helper()
	if errs := q.Submit(context.Background(), []Job{job}); errs[0] != nil {
		t.Fatal(errs[0])
	}
}

// takeAndDrop is a worker that takes the job and dies without a word: the delivery is
// given back at once (as the ack wait would after a crash).
func takeAndDrop(t *testing.T, q *Queue, markRunning bool) {
	t.Helper()
	batch, err := q.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		if markRunning {
			ctx := context.Background()
			rec, rev, err := q.get(ctx, "job1")
			if err != nil {
				t.Fatal(err)
			}
			rec.State, rec.Attempt, rec.Worker = api.SubmissionRunning, 1, "crashed"
			if _, err := q.put(ctx, rec, rev); err != nil {
				t.Fatal(err)
			}
		}
		msg.Nak()
		return
	}
	t.Fatal("no job to take")
}

// runUntilDone runs a worker until the job is done and returns its record.
func runUntilDone(t *testing.T, q *Queue) *api.Submission {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&Worker{Queue: q, Backend: host.New()}).Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rec, err := q.Get(ctx, "job1"); err == nil && rec.State == api.SubmissionDone {
			return rec
		}
	}
	t.Fatal("the job was not done in 20s")
	return nil
}

func echoJob(idempotent bool) Job {
	return Job{ID: "job1", Spec: sandbox.Spec{Language: "bash", Code: "echo ran"}, Idempotent: idempotent, SubmittedAt: time.Now()}
}

// A job whose worker vanished before it started is run by the next; one whose worker
// vanished after it started is not run again, but finished as sandbox_error, unless
// it is idempotent; one given out more than MaxAttempts times is finished as
// sandbox_error.
func TestRedelivery(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         Config
		running     bool
		idempotent  bool
		drops       int
		status      api.Status
		errContains string
	}{
		{"taken, not started", Config{}, false, false, 1, api.StatusOK, ""},
		// The delivery after the lost one waits an ack wait for a report first.
		{"started, lost", Config{AckWait: time.Second}, true, false, 1, api.StatusSandboxError, "not run again"},
		{"started, lost, idempotent", Config{}, true, true, 1, api.StatusOK, ""},
		{"attempts exhausted", Config{MaxAttempts: 2}, false, false, 2, api.StatusSandboxError, "given to workers 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, tc.cfg)
			submitOne(t, q, echoJob(tc.idempotent))
			for range tc.drops {
				takeAndDrop(t, q, tc.running)
			}
			rec := runUntilDone(t, q)
			if r := rec.Result; r == nil || r.Status != tc.status || !strings.Contains(r.Error, tc.errContains) ||
				(tc.status == api.StatusOK && r.Stdout != "ran\n") {
				t.Fatalf("%+v %+v", rec, rec.Result)
			}
			if rec.Attempt != tc.drops+1 && tc.status == api.StatusOK {
				t.Errorf("attempt %d, want %d", rec.Attempt, tc.drops+1)
			}
			// Acked: nothing is left in the stream.
			st, err := q.Stats(context.Background())
			if err != nil || st.Queued != 0 {
				t.Errorf("left in the stream: %+v %v", st, err)
			}
		})
	}
}

// A redelivered job whose result exists is acked without running again.
func TestDoneIsNotRunAgain(t *testing.T) {
	q := openTest(t, Config{})
	submitOne(t, q, echoJob(true))
	ctx, cancel := context.WithCancel(context.Background())
	rec, rev, _ := q.get(ctx, "job1")
	rec.State, rec.Result = api.SubmissionDone, &api.RunResult{Status: api.StatusOK, Stdout: "first\n"}
	if _, err := q.put(ctx, rec, rev); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- (&Worker{Queue: q, Backend: host.New()}).Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for st, _ := q.Stats(ctx); st == nil || st.Queued != 0; st, _ = q.Stats(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("not acked: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := q.Get(ctx, "job1"); got.Result.Stdout != "first\n" {
		t.Fatalf("ran again: %+v", got.Result)
	}
}

// A record too large for the bucket has its output cut, and says so.
func TestLargeResultIsCut(t *testing.T) {
	q := openTest(t, Config{})
	big := strings.Repeat("x", DefaultMaxPayload)
	rec := &api.Submission{ID: "big", State: api.SubmissionDone, Result: &api.RunResult{Status: api.StatusOK, Stdout: big, Stderr: big}}
	if _, err := q.put(context.Background(), rec, 0); err != nil {
		t.Fatal(err)
	}
	got, err := q.Get(context.Background(), "big")
	if err != nil || !got.Result.StdoutTruncated || !got.Result.StderrTruncated || len(got.Result.Stdout) < DefaultMaxPayload/3 {
		t.Fatalf("%v %d %v", err, len(got.Result.Stdout), got.Result.StdoutTruncated)
	}
}

func TestCheckCallbackURL(t *testing.T) {
	var c Callbacks
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://example.com/hook", true},
		{"http://93.184.216.34:8080/x", true},
		{"http://[2606:2800:220:1::]/x", true},
		{"ftp://example.com/", false},
		{"http:///x", false},
		{"https://user:pw@example.com/", false},
		{"http://localhost/x", false},
		{"http://a.localhost/x", false},
		{"http://127.0.0.1/x", false},
		{"http://[::1]/x", false},
		{"http://[::ffff:10.0.0.1]/x", false},
		{"http://10.0.0.1/x", false},
		{"http://172.16.5.4/x", false},
		{"http://192.168.1.1/x", false},
		{"http://169.254.169.254/latest/meta-data", false},
		{"http://100.64.1.1/x", false},
		{"http://0.0.0.0/x", false},
		{"http://[fd00::1]/x", false},
		{"http://[fe80::1]/x", false},
		{"http://[64:ff9b::a00:1]/x", false},
		{"http://224.0.0.1/x", false},
	} {
		err := c.Check(tc.url)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrCallbackTarget)) {
			t.Errorf("%s: %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
	if err := (&Callbacks{AllowPrivate: true}).Check("http://127.0.0.1:9/x"); err != nil {
		t.Errorf("AllowPrivate: %v", err)
	}
}

// A name that resolves to a refused address is refused when the connection is made
// (the check Check cannot make), and a refusal is not retried.
func TestCallbackRefusedAtDial(t *testing.T) {
	hits := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	name := loopbackName(t)
	c := &Callbacks{Backoff: time.Millisecond}
	n, err := c.Send(context.Background(), "http://"+net.JoinHostPort(name, port)+"/x", "id", []byte("{}"))
	if !errors.Is(err, ErrCallbackTarget) || n != 1 || hits.Load() != 0 {
		t.Fatalf("attempts %d, hits %d: %v", n, hits.Load(), err)
	}
}

// loopbackName is a name other than localhost that resolves to a loopback address
// here (the host name does, on most machines).
func loopbackName(t *testing.T) string {
	for _, name := range []string{hostname(), "ip6-localhost", "ip6-loopback"} {
		addrs, _ := net.LookupHost(name)
		for _, a := range addrs {
			if ip, err := netip.ParseAddr(a); err == nil && ip.IsLoopback() && name != "" {
				return name
			}
		}
	}
	t.Skip("no name but localhost resolves to a loopback address here")
	return ""
}

func hostname() string {
	h, _ := net.LookupAddr("127.0.0.1")
	for _, n := range h {
		if n = strings.TrimSuffix(n, "."); n != "localhost" {
			return n
		}
	}
	return ""
}

// A callback is retried on 5xx with a doubling backoff, and not on a 4xx.
func TestCallbackRetries(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case r.URL.Path == "/gone":
			w.WriteHeader(http.StatusGone)
		case hits.Add(1) < 3:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := &Callbacks{AllowPrivate: true, Backoff: time.Millisecond}
	if n, err := c.Send(context.Background(), srv.URL+"/ok", "id", []byte("{}")); err != nil || n != 3 {
		t.Errorf("flaky receiver: %d attempts, %v", n, err)
	}
	if n, err := c.Send(context.Background(), srv.URL+"/gone", "id", []byte("{}")); err == nil || n != 1 {
		t.Errorf("410: %d attempts, %v", n, err)
	}
}
