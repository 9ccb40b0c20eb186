package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/client"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/sandbox/native"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// serve starts a real server over the native backend on loopback.
func serve(t *testing.T, cfg server.Config) string {
	t.Helper()
	b, err := native.New(context.Background(), native.Config{})
	if err != nil {
		t.Skipf("native backend unavailable: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	cfg.Backend = b
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestClient(t *testing.T) {
	url := serve(t, server.Config{Token: "tok"})
	ctx := context.Background()
	c, err := client.New(url, client.WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(ctx, api.RunRequest{Language: "python", Code: "print(input() * 2)", Stdin: "ab\n"})
	if err != nil || res.Status != api.StatusOK || res.Stdout != "abab\n" {
		t.Fatalf("%+v %v", res, err)
	}
	// The server's account of the run's time, beside the result.
	res, tm, err := c.RunTimed(ctx, api.RunRequest{Command: []string{"sleep", "0.05"}})
	if err != nil || res.Status != api.StatusOK || tm.Run < 50*time.Millisecond || tm.Total < tm.Run {
		t.Fatalf("%+v %+v %v", res, tm, err)
	}
	res, err = c.Run(ctx, api.RunRequest{Language: "python", Code: "1/0"})
	if err != nil || res.Status != api.StatusRuntimeError || res.Diagnostic.Type != "ZeroDivisionError" {
		t.Fatalf("%+v %v", res, err)
	}

	st, err := c.Stream(ctx, api.RunRequest{Language: "bash", Code: "echo a; echo b >&2; exit 4"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		e, err := st.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == api.EventLine {
			got = append(got, e.Stream+":"+e.Text)
		}
	}
	st.Close()
	if strings.Join(got, ",") != "stdout:a,stderr:b" && strings.Join(got, ",") != "stderr:b,stdout:a" {
		t.Errorf("lines %v", got)
	}
	if r := st.Result(); r == nil || *r.ExitCode != 4 {
		t.Errorf("result %+v", r)
	}

	langs, err := c.Languages(ctx)
	if err != nil || len(langs) < 3 {
		t.Fatalf("%v %v", langs, err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	// Errors: a bad request names its field; a wrong token is a 401.
	_, err = c.Run(ctx, api.RunRequest{Command: []string{"true"}, Limits: api.Limits{WallTime: time.Hour}})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 400 || ce.Field != "limits.wall_time_ms" {
		t.Errorf("over the maximum: %v", err)
	}
	bad, _ := client.New(url, client.WithToken("nope"))
	if _, err := bad.Run(ctx, api.RunRequest{Command: []string{"true"}}); !errors.As(err, &ce) || ce.StatusCode != 401 {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := client.New("ftp://x"); err == nil {
		t.Error("an ftp URL was accepted")
	}
}

// A server with its slots and queue full answers ErrOverloaded with a retry time.
func TestOverloaded(t *testing.T) {
	url := serve(t, server.Config{Running: 1, Queue: 1})
	c, _ := client.New(url)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.Run(ctx, api.RunRequest{Command: []string{"sleep", "1"}}) })
	}
	time.Sleep(300 * time.Millisecond)
	_, err := c.Run(ctx, api.RunRequest{Command: []string{"true"}})
	var ce *client.Error
	if !errors.Is(err, client.ErrOverloaded) || !errors.As(err, &ce) || ce.RetryAfter <= 0 {
		t.Errorf("%v, want ErrOverloaded with a Retry-After", err)
	}
	wg.Wait()
}

// Ending the context abandons the request, and the server stops the run.
func TestCancel(t *testing.T) {
	url := serve(t, server.Config{})
	c, _ := client.New(url)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, api.RunRequest{Command: []string{"sleep", "30"}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("%v after %v", err, time.Since(start))
	}
}

// A stream read to its result and closed leaves its connection for the next request.
func TestStreamKeepsConnection(t *testing.T) {
	url := serve(t, server.Config{})
	c, _ := client.New(url, client.WithHTTPClient(&http.Client{Transport: &http.Transport{}}))
	st, err := c.Stream(context.Background(), api.RunRequest{Command: []string{"echo", "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	reused := false
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	if res, err := c.Run(ctx, api.RunRequest{Command: []string{"true"}}); err != nil || res.Status != api.StatusOK {
		t.Fatalf("%+v %v", res, err)
	}
	if !reused {
		t.Error("the run after a stream opened a new connection")
	}
}
