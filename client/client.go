// Package client calls a runbox server (`runbox serve`) from Go: runs, with their
// results whole or their events as they happen, and the languages the server runs.
// Every call takes a context first; ending it abandons the request, and the server
// stops the run.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runboxhq/runbox/api"
)

// Client is a runbox server's client. Safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends the bearer token a server started with --token requires.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient uses hc instead of http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client of the server at baseURL ("http://127.0.0.1:8080").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ErrOverloaded is matched (errors.Is) by the error of a request the server turned
// away because every run slot and queue place was taken; Error.RetryAfter says when
// to come back.
var ErrOverloaded = errors.New("client: the server is overloaded")

// Error is an answer of the server other than success.
type Error struct {
	StatusCode int
	Message    string
	Field      string        // the request field at fault, for a 400
	RetryAfter time.Duration // for a 429 or 503, when the server said
}

func (e *Error) Error() string {
	s := fmt.Sprintf("runbox server: %d %s", e.StatusCode, e.Message)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// Is makes a 429 match ErrOverloaded.
func (e *Error) Is(target error) bool {
	return target == ErrOverloaded && e.StatusCode == http.StatusTooManyRequests
}

// Run runs req and returns its result. A program that failed is a result, not an
// error; a run runbox could not carry out returns its result (status sandbox_error)
// and an *Error.
func (c *Client) Run(ctx context.Context, req api.RunRequest) (*api.RunResult, error) {
	res, _, err := c.RunTimed(ctx, req)
	return res, err
}

// RunTimed is Run, with the server's account of the request's time (its
// Server-Timing header): the time of the run itself apart from the HTTP around it.
// The Timing is zero when the server did not say (a refused request, an older
// server).
func (c *Client) RunTimed(ctx context.Context, req api.RunRequest) (*api.RunResult, Timing, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/runs", req, "application/json")
	if err != nil {
		return nil, Timing{}, err
	}
	defer resp.Body.Close()
	tm := parseTiming(resp.Header.Values("Server-Timing"))
	body, err := readAnswer(resp)
	if err != nil {
		return nil, tm, fmt.Errorf("client: read the result: %w", err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusInternalServerError {
		var res api.RunResult
		// Its own UnmarshalJSON, not json.Unmarshal's: that would scan the whole
		// answer twice more before calling it (to check it, then to find its end).
		if jerr := res.UnmarshalJSON(body); jerr == nil && res.Status != "" {
			if resp.StatusCode != http.StatusOK {
				return &res, tm, &Error{StatusCode: resp.StatusCode, Message: res.Error}
			}
			return &res, tm, nil
		}
	}
	return nil, tm, answerError(resp, body)
}

// Stream runs req and returns its events as they happen (docs/events.md): started,
// the lines of output, and the result last.
func (c *Client) Stream(ctx context.Context, req api.RunRequest) (*Stream, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/runs?stream=1", req, "application/x-ndjson")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, answerError(resp, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &Stream{body: resp.Body, sc: sc}, nil
}

// Stream is a run's events. Close it when done.
type Stream struct {
	body   io.ReadCloser
	sc     *bufio.Scanner
	result *api.RunResult
}

// Next returns the next event; after the result event it returns io.EOF. A stream
// that ends before its result is an error.
func (s *Stream) Next() (api.Event, error) {
	if s.result != nil {
		return api.Event{}, io.EOF
	}
	if !s.sc.Scan() {
		err := s.sc.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return api.Event{}, fmt.Errorf("client: the event stream ended before the result: %w", err)
	}
	var e api.Event
	if err := json.Unmarshal(s.sc.Bytes(), &e); err != nil {
		return api.Event{}, fmt.Errorf("client: a malformed event: %w", err)
	}
	if e.Type == api.EventResult {
		s.result = e.Run
		if s.result == nil {
			return e, errors.New("client: a result event without its result")
		}
	}
	return e, nil
}

// Result is the run's result once Next has returned it, nil before.
func (s *Stream) Result() *api.RunResult { return s.result }

// Close ends the stream; a run still going is stopped by the server.
func (s *Stream) Close() error {
	if s.result != nil {
		// The stream ends with its result: read that end, so that the connection
		// is kept for the next request instead of closed.
		_, _ = io.Copy(io.Discard, io.LimitReader(s.body, maxTrailing))
	}
	return s.body.Close()
}

// maxTrailing bounds what Close reads after a stream's result: nothing, from runbox.
const maxTrailing = 4 << 10

// Languages lists the languages the server runs, with their versions.
func (c *Client) Languages(ctx context.Context) ([]api.Language, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/languages", nil, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, answerError(resp, body)
	}
	var langs []api.Language
	if err := json.Unmarshal(body, &langs); err != nil {
		return nil, fmt.Errorf("client: decode the languages: %w", err)
	}
	return langs, nil
}

// Ready reports whether the server accepts runs (GET /readyz).
func (c *Client) Ready(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodGet, "/readyz", nil, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return answerError(resp, body)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("client: encode the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base.JoinPath(strings.SplitN(path, "?", 2)[0])
	if _, q, ok := strings.Cut(path, "?"); ok {
		u.RawQuery = q
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	return resp, nil
}

func answerError(resp *http.Response, body []byte) error {
	e := &Error{StatusCode: resp.StatusCode}
	var ae api.Error
	if json.Unmarshal(body, &ae) == nil && ae.Error != "" {
		e.Message, e.Field = ae.Error, ae.Field
	} else {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512]
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
