package pool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	if enc.Encode(hello{Worker: ProtocolVersion, Pid: os.Getpid()}) != nil || w.Flush() != nil {
		return 1
	}
	r := bufio.NewReaderSize(stdin, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			return 0 // stdin closed: the pool is done with us
		}
		var req request
		resp := response{}
		if err := json.Unmarshal(line, &req); err != nil {
			resp.Error = &RemoteError{Message: fmt.Sprintf("bad request: %v", err), Type: "BadRequest"}
		} else {
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
				out, err := fn(context.Background(), in)
				if err != nil {
					resp.Error = &RemoteError{Message: err.Error()}
					break
				}
				if resp.Result, err = json.Marshal(out); err != nil {
					resp.Error = &RemoteError{Message: err.Error(), Type: "BadOutput"}
				}
			default:
				resp.Error = &RemoteError{Message: "unknown method " + req.Method, Type: "BadRequest"}
			}
		}
		if enc.Encode(resp) != nil || w.Flush() != nil {
			return 1
		}
	}
}

var errHello = errors.New("pool: worker did not announce itself")
