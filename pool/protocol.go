package pool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProtocolVersion is the version a worker announces in its handshake.
const ProtocolVersion = 1

// maxFrame bounds one frame (one line) from a worker.
const maxFrame = 64 << 20

// Frames. A worker first writes a hello, then answers each request with a response
// carrying the same id.
type hello struct {
	Worker int `json:"runbox_worker"` // protocol version
	Pid    int `json:"pid"`
}

type request struct {
	ID     uint64          `json:"id"`
	Method string          `json:"method"` // "call", "init" or "ping"
	Params json.RawMessage `json:"params,omitempty"`
}

type response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RemoteError    `json:"error,omitempty"`
}

// appendRequest appends a request frame, newline included. params is JSON from
// json.Marshal, so already valid and compact: the envelope needs no encoder.
func appendRequest(b []byte, id uint64, method string, params json.RawMessage) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":"`...)
	b = append(b, method...)
	b = append(b, '"')
	if params != nil {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, "}\n"...)
}

// The envelopes of the frames every task crosses, as appendRequest and the Go, Python
// and JavaScript workers write them: {"id":N,"method":"call","params":V} and
// {"id":N,"result":V}. cutFrame reads them without reflection.
const (
	callKey   = `,"method":"call","params":`
	resultKey = `,"result":`
)

// cutFrame splits {"id":N<key>V} into N and V, untrimmed and unchecked. The frame is
// exactly that envelope if V is one JSON value: the caller checks it.
func cutFrame[S ~string | ~[]byte](line S, key string) (id uint64, v S, ok bool) {
	const pre = `{"id":`
	if len(line) < len(pre)+1+len(key)+1 || string(line[:len(pre)]) != pre || line[len(line)-1] != '}' {
		return 0, v, false
	}
	rest := line[len(pre) : len(line)-1]
	n := 0
	for ; n < len(rest) && '0' <= rest[n] && rest[n] <= '9'; n++ {
		id = id*10 + uint64(rest[n]-'0')
	}
	// At most 19 digits cannot overflow; ids never get near.
	if n == 0 || n > 19 || n > 1 && rest[0] == '0' || len(rest)-n < len(key) || string(rest[n:n+len(key)]) != key {
		return 0, v, false
	}
	return id, rest[n+len(key):], true
}

// parseResponse reads a response frame: the result envelope by cutFrame and one scan
// of the result, anything else with encoding/json.
func parseResponse(line string) (response, bool) {
	if id, v, ok := cutFrame(line, resultKey); ok {
		if result := json.RawMessage(strings.Trim(v, " \t\r\n")); json.Valid(result) {
			return response{ID: id, Result: result}, true
		}
	}
	var resp response
	err := json.Unmarshal([]byte(line), &resp)
	return resp, err == nil
}

// RemoteError is a task failure the worker reported.
type RemoteError struct {
	Message string `json:"message"`
	Type    string `json:"type,omitempty"`
}

func (e *RemoteError) Error() string {
	if e.Type != "" {
		return "pool: task failed: " + e.Type + ": " + e.Message
	}
	return "pool: task failed: " + e.Message
}

// ServeWorker is the Go side of a worker: it announces itself, then answers requests
// with fn until stdin closes. fn's error becomes the task's RemoteError. It does not
// return.
func ServeWorker[In, Out any](fn func(context.Context, In) (Out, error)) {
	os.Exit(serveWorker(os.Stdin, os.Stdout, nil, fn))
}

// ServeWorkerInit is ServeWorker with an initializer: init runs once, on Config.Init,
// before the worker's first task (like multiprocessing.Pool's initializer); its error
// fails the worker's start.
func ServeWorkerInit[Init, In, Out any](init func(context.Context, Init) error, fn func(context.Context, In) (Out, error)) {
	os.Exit(serveWorker(os.Stdin, os.Stdout, func(raw json.RawMessage) error {
		var v Init
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return init(context.Background(), v)
	}, fn))
}

func serveWorker[In, Out any](stdin, stdout *os.File, init func(json.RawMessage) error, fn func(context.Context, In) (Out, error)) int {
	hi, _ := json.Marshal(hello{Worker: ProtocolVersion, Pid: os.Getpid()})
	if _, err := stdout.Write(append(hi, '\n')); err != nil {
		return 1
	}
	r := bufio.NewReaderSize(stdin, 64<<10)
	var out []byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			return 0 // stdin closed: the pool is done with us
		}
		out = respond(out[:0], bytes.TrimRight(line, "\r\n"), init, fn)
		if _, err := stdout.Write(out); err != nil {
			return 1
		}
	}
}

// respond appends the response frame to one request line, newline included.
func respond[In, Out any](b, line []byte, init func(json.RawMessage) error, fn func(context.Context, In) (Out, error)) []byte {
	if id, params, ok := cutFrame(line, callKey); ok {
		var in In
		if json.Unmarshal(params, &in) == nil { // so params is one value: line is a call
			return appendResult(b, id, fn, in)
		}
	}
	return respondDecoded(b, line, init, fn)
}

// respondDecoded is respond for any request, decoded by encoding/json.
func respondDecoded[In, Out any](b, line []byte, init func(json.RawMessage) error, fn func(context.Context, In) (Out, error)) []byte {
	var req request
	resp := response{}
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = &RemoteError{Message: fmt.Sprintf("bad request: %v", err), Type: "BadRequest"}
		return appendResponse(b, resp)
	}
	resp.ID = req.ID
	switch req.Method {
	case "ping":
		resp.Result = json.RawMessage(`"pong"`)
	case "init":
		switch {
		case init == nil:
			resp.Error = &RemoteError{Message: "worker has no initializer", Type: "BadRequest"}
		default:
			if err := init(req.Params); err != nil {
				resp.Error = &RemoteError{Message: err.Error(), Type: "InitError"}
			} else {
				resp.Result = json.RawMessage(`null`)
			}
		}
	case "call":
		var in In
		if err := json.Unmarshal(req.Params, &in); err != nil {
			resp.Error = &RemoteError{Message: err.Error(), Type: "BadInput"}
			break
		}
		return appendResult(b, req.ID, fn, in)
	default:
		resp.Error = &RemoteError{Message: "unknown method " + req.Method, Type: "BadRequest"}
	}
	return appendResponse(b, resp)
}

// appendResult runs fn and appends its response. A result is JSON from json.Marshal,
// valid and compact: its envelope needs no encoder.
func appendResult[In, Out any](b []byte, id uint64, fn func(context.Context, In) (Out, error), in In) []byte {
	out, err := fn(context.Background(), in)
	if err != nil {
		return appendResponse(b, response{ID: id, Error: &RemoteError{Message: err.Error()}})
	}
	result, err := json.Marshal(out)
	if err != nil {
		return appendResponse(b, response{ID: id, Error: &RemoteError{Message: err.Error(), Type: "BadOutput"}})
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, resultKey...)
	b = append(b, result...)
	return append(b, "}\n"...)
}

func appendResponse(b []byte, resp response) []byte {
	line, _ := json.Marshal(resp) // a response of valid parts always encodes
	b = append(b, line...)
	return append(b, '\n')
}

var errHello = errors.New("pool: worker did not announce itself")
