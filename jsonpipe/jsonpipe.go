package jsonpipe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/runboxhq/runbox/proc"
)

// quoteLimit bounds how much of a child's output an error message quotes.
const quoteLimit = 200

// RemoteError is a failure the child reported: {"error": ...} on stderr and a non-zero
// exit.
type RemoteError struct {
	Message string
	Type    string       // the child's error type, when it gave one ("ValueError")
	Result  *proc.Result // the run
}

func (e *RemoteError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("jsonpipe: %s: %s: %s", argv0(e.Result), e.Type, e.Message)
	}
	return fmt.Sprintf("jsonpipe: %s: %s", argv0(e.Result), e.Message)
}

// DecodeError is output that is not the JSON the caller expected. Head quotes the
// first bytes of stdout.
type DecodeError struct {
	Head   string
	Err    error
	Result *proc.Result
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("jsonpipe: %s: invalid JSON output (%v), starting %q", argv0(e.Result), e.Err, e.Head)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func argv0(r *proc.Result) string {
	if r == nil || len(r.Argv) == 0 {
		return "?"
	}
	return r.Argv[0]
}

// Call runs cmd with in as JSON on stdin and decodes its stdout into an Out. cmd's
// Stdin and Stdout are set by Call; its other settings (Timeout, Env, limits) apply.
//
// Errors: a *proc.StartError when it cannot start; a *RemoteError when the child
// reported one; a *proc.ExitError for any other failed run (errors.Is(err,
// proc.ErrTimeout) after a timeout, which killed the tree); a *DecodeError when the
// output is not an Out in JSON.
func Call[Out any](ctx context.Context, cmd *proc.Cmd, in any) (Out, error) {
	var out Out
	arg, err := json.Marshal(in)
	if err != nil {
		return out, fmt.Errorf("jsonpipe: encode argument: %w", err)
	}
	c := *cmd
	c.Stdin = proc.Bytes(arg)
	c.Stdout = []proc.Sink{proc.Capture(0)}
	if c.Stderr == nil {
		c.Stderr = []proc.Sink{proc.Capture(0)}
	}
	c.Check = false
	res, err := c.Run(ctx)
	if err != nil {
		return out, err
	}
	if res.Status != proc.StatusOK {
		if res.Status == proc.StatusExitError {
			if re := remoteError(res); re != nil {
				return out, re
			}
		}
		return out, res.Err()
	}
	if res.StdoutTruncated {
		return out, &DecodeError{Head: head(res.Stdout), Err: fmt.Errorf("output over %d bytes", proc.DefaultCaptureLimit), Result: res}
	}
	dec := json.NewDecoder(bytes.NewReader(res.Stdout))
	if err := dec.Decode(&out); err != nil {
		return out, &DecodeError{Head: head(res.Stdout), Err: err, Result: res}
	}
	if _, err := dec.Token(); err == nil {
		return out, &DecodeError{Head: head(res.Stdout), Err: errors.New("more than one JSON value"), Result: res}
	}
	return out, nil
}

func head(b []byte) string {
	if len(b) > quoteLimit {
		b = b[:quoteLimit]
	}
	return string(b)
}

// remoteError finds the child's report: the last stderr line that is a JSON object
// with a string "error".
func remoteError(res *proc.Result) *RemoteError {
	lines := strings.Split(strings.TrimRight(string(res.Stderr), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var rep struct {
			Error *string `json:"error"`
			Type  string  `json:"type"`
		}
		if json.Unmarshal([]byte(lines[i]), &rep) == nil && rep.Error != nil {
			return &RemoteError{Message: *rep.Error, Type: rep.Type, Result: res}
		}
	}
	return nil
}

// Serve is the child side in Go: it reads one In from stdin, calls fn, and writes the
// Out to stdout; when fn fails it writes {"error": ...} to stderr and exits 1. It does
// not return.
func Serve[In, Out any](fn func(context.Context, In) (Out, error)) {
	os.Exit(serve(os.Stdin, os.Stdout, os.Stderr, fn))
}

func serve[In, Out any](stdin *os.File, stdout, stderr *os.File, fn func(context.Context, In) (Out, error)) int {
	var in In
	if err := json.NewDecoder(bufio.NewReader(stdin)).Decode(&in); err != nil {
		report(stderr, "BadInput", fmt.Sprintf("decode input: %v", err))
		return 1
	}
	out, err := fn(context.Background(), in)
	if err != nil {
		report(stderr, "", err.Error())
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		report(stderr, "BadOutput", fmt.Sprintf("encode output: %v", err))
		return 1
	}
	return 0
}

func report(w *os.File, typ, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
		Type  string `json:"type,omitempty"`
	}{msg, typ})
	w.Write(append(b, '\n'))
}
