package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/runboxhq/runbox/api"
)

// maxAnswer bounds an answer read whole: a thousand records with their outputs.
const maxAnswer = 1 << 30

// maxPrealloc bounds the buffer readAnswer makes before the answer arrives, so
// that a Content-Length is not taken on trust for more.
const maxPrealloc = 64 << 20

// readAnswer reads an answer whole, up to maxAnswer, into one buffer of its
// Content-Length when the server said it (runbox's answers do), instead of growing
// one as it comes.
func readAnswer(resp *http.Response) ([]byte, error) {
	size := bytes.MinRead // room for the read that finds the end
	if n := resp.ContentLength; n > 0 {
		size += int(min(n, maxPrealloc))
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, maxAnswer))
	return buf.Bytes(), err
}

// call sends a request and reads the answer into out when its status is want; any
// other status is an *Error (and out holds the answer when it decodes).
func (c *Client) call(ctx context.Context, method, path string, body any, want int, out any) error {
	resp, err := c.do(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := readAnswer(resp)
	if err != nil {
		return fmt.Errorf("client: read the answer: %w", err)
	}
	derr := json.Unmarshal(b, out)
	if resp.StatusCode != want {
		return answerError(resp, b)
	}
	if derr != nil {
		return fmt.Errorf("client: decode the answer: %w", derr)
	}
	return nil
}

// Submit queues a run (POST /v1/submissions) and returns its id at once; a full
// queue is an error matching ErrOverloaded.
func (c *Client) Submit(ctx context.Context, req api.SubmitRequest) (string, error) {
	var s api.Submitted
	if err := c.call(ctx, http.MethodPost, "/v1/submissions", req, http.StatusAccepted, &s); err != nil {
		return "", err
	}
	return s.ID, nil
}

// SubmitBatch queues runs in one request and returns one answer per run: its id, or
// why it was refused. A batch with an invalid run is refused whole; the error is then
// an *Error, and the answers say which runs were at fault.
func (c *Client) SubmitBatch(ctx context.Context, reqs []api.SubmitRequest) ([]api.Submitted, error) {
	var out struct {
		Submissions []api.Submitted `json:"submissions"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/submissions", map[string]any{"submissions": reqs}, http.StatusAccepted, &out)
	return out.Submissions, err
}

// Submission returns a submission: queued, running, or done with its result.
func (c *Client) Submission(ctx context.Context, id string) (*api.Submission, error) {
	var s api.Submission
	if err := c.call(ctx, http.MethodGet, "/v1/submissions/"+url.PathEscape(id), nil, http.StatusOK, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Submissions returns several submissions, in the order of ids; one that does not
// exist has only its ID (and an empty State).
func (c *Client) Submissions(ctx context.Context, ids []string) ([]api.Submission, error) {
	var out struct {
		Submissions []api.Submission `json:"submissions"`
	}
	q := url.Values{"ids": {strings.Join(ids, ",")}}
	if err := c.call(ctx, http.MethodGet, "/v1/submissions?"+q.Encode(), nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return out.Submissions, nil
}

// Wait follows a submission (GET /v1/submissions/{id}?watch=1) until it is done, and
// returns it with its result.
func (c *Client) Wait(ctx context.Context, id string) (*api.Submission, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/submissions/"+url.PathEscape(id)+"?watch=1", nil, "application/x-ndjson")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, answerError(resp, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var s api.Submission
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("client: a malformed record: %w", err)
		}
		if s.State == api.SubmissionDone {
			return &s, nil
		}
	}
	return nil, fmt.Errorf("client: the watch of %s ended before it was done: %v", id, sc.Err())
}
