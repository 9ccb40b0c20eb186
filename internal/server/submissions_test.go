package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/queue"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/host"
)

// queueServer serves the API with a submission queue on an embedded NATS server in a
// temporary directory, and (workers > 0) an in-process worker on the host backend.
func queueServer(t *testing.T, cfg queue.Config, workers int, cb *queue.Callbacks) *httptest.Server {
	return queueServerOn(t, host.New(), cfg, workers, cb)
}

// queueServerOn is queueServer on backend b.
func queueServerOn(t testing.TB, b sandbox.Backend, cfg queue.Config, workers int, cb *queue.Callbacks) *httptest.Server {
	t.Helper()
	ns, err := queue.StartServer(queue.ServerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Config{Backend: b, Running: workers, Submissions: q, Callbacks: cb})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	if workers > 0 {
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		w := &queue.Worker{Queue: q, Backend: b, Concurrency: workers, Callbacks: cb, Ran: s.Ran}
		go func() { done <- w.Run(wctx) }()
		t.Cleanup(func() { stop(); <-done })
	}
	return ts
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

// watchDone reads a watch stream to its end and returns its last record of each id.
func watchDone(t *testing.T, url string) map[string]api.Submission {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("watch: %d %s", resp.StatusCode, ct)
	}
	last := map[string]api.Submission{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var s api.Submission
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("watch line %q: %v", sc.Text(), err)
		}
		if prev, ok := last[s.ID]; ok && prev.State == api.SubmissionDone {
			t.Errorf("a record after done: %s", sc.Text())
		}
		last[s.ID] = s
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	return last
}

// A submission is answered at once with its id; the watch stream follows it to its
// result, the result POST /v1/runs gives; a batch likewise, and GET ?ids= reads many.
func TestSubmissions(t *testing.T) {
	ts := queueServer(t, queue.Config{}, 2, nil)
	var one api.Submitted
	resp := post(t, ts.URL+"/v1/submissions", "", `{"language":"python","code":"print(input()*2)","stdin":"ab"}`, &one)
	if resp.StatusCode != http.StatusAccepted || one.ID == "" || one.State != api.SubmissionQueued ||
		resp.Header.Get("Location") != "/v1/submissions/"+one.ID {
		t.Fatalf("submit: %d %+v %v", resp.StatusCode, one, resp.Header)
	}
	got := watchDone(t, ts.URL+"/v1/submissions/"+one.ID+"?watch=1")
	rec := got[one.ID]
	if rec.State != api.SubmissionDone || rec.Result == nil || rec.Result.Status != api.StatusOK ||
		rec.Result.Stdout != "abab\n" || rec.Result.RunID != one.ID || rec.StartedAt == nil || rec.Worker == "" {
		t.Fatalf("watched: %+v %+v", rec, rec.Result)
	}
	var again api.Submission
	if code := getJSON(t, ts.URL+"/v1/submissions/"+one.ID, &again); code != 200 || again.Result == nil || again.Result.Stdout != "abab\n" {
		t.Fatalf("get: %d %+v", code, again)
	}

	var items []string
	for i := range 20 {
		items = append(items, fmt.Sprintf(`{"language":"bash","code":"echo %d; exit %d"}`, i, i%2))
	}
	var batch struct{ Submissions []api.Submitted }
	resp = post(t, ts.URL+"/v1/submissions", "", `{"submissions":[`+strings.Join(items, ",")+`]}`, &batch)
	if resp.StatusCode != http.StatusAccepted || len(batch.Submissions) != 20 {
		t.Fatalf("batch: %d %+v", resp.StatusCode, batch)
	}
	var ids []string
	for _, s := range batch.Submissions {
		ids = append(ids, s.ID)
	}
	got = watchDone(t, ts.URL+"/v1/submissions?watch=1&ids="+strings.Join(ids, ","))
	for i, id := range ids {
		r := got[id].Result
		want := api.StatusOK
		if i%2 == 1 {
			want = api.StatusRuntimeError
		}
		if r == nil || r.Status != want || r.Stdout != fmt.Sprintf("%d\n", i) {
			t.Errorf("batch item %d: %+v", i, got[id])
		}
	}
	var many struct{ Submissions []json.RawMessage }
	if code := getJSON(t, ts.URL+"/v1/submissions?ids="+ids[0]+",nosuch,"+ids[1], &many); code != 200 || len(many.Submissions) != 3 ||
		!strings.Contains(string(many.Submissions[1]), `"no such submission"`) || !strings.Contains(string(many.Submissions[2]), `"state":"done"`) {
		t.Fatalf("get many: %d %s", code, many.Submissions)
	}
}

// Bad input is a 4xx that says what is wrong, and a bad item refuses its whole batch.
func TestSubmissionsBadInput(t *testing.T) {
	ts := queueServer(t, queue.Config{}, 0, nil)
	for _, tc := range []struct {
		body  string
		code  int
		field string
		want  string
	}{
		{`{"language":`, 400, "", "malformed JSON"},
		{`{"language":"cobol","code":"x"}`, 400, "", "cobol"},
		{`{"language":"bash","code":"true","limits":{"wall_time_ms":99999999}}`, 400, "limits.wall_time_ms", "maximum"},
		{`{"language":"bash","code":"true","callback_url":"http://127.0.0.1:9/x"}`, 400, "callback_url", "loopback"},
		{`{"language":"bash","code":"true","callback_url":"http://10.1.2.3/x"}`, 400, "callback_url", "private"},
		{`{"language":"bash","code":"true","callback_url":"http://169.254.169.254/x"}`, 400, "callback_url", "link-local"},
		{`{"language":"bash","code":"true","callback_url":"ftp://example.com/"}`, 400, "callback_url", "http"},
		{`{"submissions":[]}`, 400, "submissions", "1 to 1000"},
		{`{"language":"bash","submissions":[{"language":"bash","code":"true"}]}`, 400, "submissions", "nothing else"},
		{`{"submissions":[{"language":"bash","code":"true"},{"language":"bash","code":"true","limits":{"memory_bytes":-1}}]}`, 400, "", "none was queued"},
	} {
		var e struct {
			Error, Field string
			Submissions  []api.Submitted
		}
		resp := post(t, ts.URL+"/v1/submissions", "", tc.body, &e)
		if resp.StatusCode != tc.code || e.Field != tc.field || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %+v; want %d %q %q", tc.body, resp.StatusCode, e, tc.code, tc.field, tc.want)
		}
		if strings.Contains(tc.body, "memory_bytes") && (len(e.Submissions) != 2 || e.Submissions[0].Error != "" ||
			e.Submissions[1].Field != "submissions[1].limits.memory_bytes") {
			t.Errorf("batch answers: %+v", e.Submissions)
		}
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/v1/submissions/nosuch", 404},
		{"/v1/submissions/a.b", 400},
		{"/v1/submissions/*", 400},
		{"/v1/submissions?ids=", 400},
		{"/v1/submissions?ids=a,>", 400},
		{"/v1/submissions?ids=" + manyIDs(1001), 400},
	} {
		var e api.Error
		if code := getJSON(t, ts.URL+tc.path, &e); code != tc.code || e.Error == "" {
			t.Errorf("GET %.60s: %d %+v, want %d", tc.path, code, e, tc.code)
		}
	}
}

// A full queue refuses new submissions at once with 429 and Retry-After.
func TestSubmissionsQueueFull(t *testing.T) {
	ts := queueServer(t, queue.Config{MaxQueued: 3}, 0, nil)
	body := `{"language":"bash","code":"true"}`
	for i := range 3 {
		if resp := post(t, ts.URL+"/v1/submissions", "", body, nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submission %d: %d", i, resp.StatusCode)
		}
	}
	var e api.Error
	resp := post(t, ts.URL+"/v1/submissions", "", body, &e)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "full") {
		t.Fatalf("over the bound: %d %v %+v", resp.StatusCode, resp.Header, e)
	}
	resp = post(t, ts.URL+"/v1/submissions", "", `{"submissions":[`+body+`]}`, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a batch over the bound: %d", resp.StatusCode)
	}
}

// The result is POSTed to the callback URL, signed with the secret.
func TestSubmissionCallback(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		_, _ = bufio.NewReader(r.Body).WriteTo(&b)
		got <- r
		bodies <- []byte(b.String())
	}))
	defer hook.Close()
	cb := &queue.Callbacks{Secret: []byte("s3cret"), AllowPrivate: true}
	ts := queueServer(t, queue.Config{}, 1, cb)
	var one api.Submitted
	post(t, ts.URL+"/v1/submissions", "", `{"language":"bash","code":"echo hi","callback_url":"`+hook.URL+`/done"}`, &one)
	var r *http.Request
	select {
	case r = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no callback")
	}
	body := <-bodies
	if sig := r.Header.Get(queue.SignatureHeader); sig != queue.Sign([]byte("s3cret"), r.Header.Get(queue.TimestampHeader), body) {
		t.Errorf("signature %q does not match the body", sig)
	}
	var rec api.Submission
	if err := json.Unmarshal(body, &rec); err != nil || rec.ID != one.ID || rec.Result == nil || rec.Result.Stdout != "hi\n" ||
		r.Header.Get(queue.SubmissionHeader) != one.ID || r.URL.Path != "/done" {
		t.Fatalf("callback: %v %+v %s", err, rec, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var after api.Submission
		getJSON(t, ts.URL+"/v1/submissions/"+one.ID, &after)
		if after.Callback != nil && after.Callback.State == api.CallbackDelivered && after.Callback.Attempts == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callback state: %+v", after.Callback)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func manyIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	return strings.Join(ids, ",")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
