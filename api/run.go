package api

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Status is the verdict of one sandboxed run. Every backend uses the same words.
type Status string

const (
	StatusOK           Status = "ok"            // exited 0
	StatusRuntimeError Status = "runtime_error" // exited non-zero (an uncaught exception, exit(3), …)
	StatusSyntaxError  Status = "syntax_error"  // the code did not parse; Diagnostic says where
	StatusTimeout      Status = "timeout"       // the wall or CPU time limit fired (see Limit)
	StatusOOM          Status = "oom"           // the kernel killed it for exceeding the memory limit
	StatusOutputLimit  Status = "output_limit"  // stdout or stderr exceeded its cap (see Limit)
	StatusSignaled     Status = "signaled"      // a signal ended it (SIGSEGV, SIGABRT, …); see Signal
	StatusSandboxError Status = "sandbox_error" // runbox could not run it; never the code's fault; see Error
)

// Which limit fired, in RunResult.Limit.
const (
	LimitWall   = "wall"
	LimitCPU    = "cpu"
	LimitMemory = "memory"
	LimitStdout = "stdout"
	LimitStderr = "stderr"
)

// Network modes of Limits.Network.
const (
	NetworkNone     = "none"     // no interface at all but a loopback that is down
	NetworkLoopback = "loopback" // a private loopback (127.0.0.1 of the box only)
)

// Limits bounds one run. A zero field means the backend's default (see sandbox's
// Default* constants); a result echoes the effective values. In JSON, durations are
// milliseconds and sizes bytes.
type Limits struct {
	WallTime  time.Duration `json:"-"`
	CPUTime   time.Duration `json:"-"`
	Memory    int64         `json:"memory_bytes,omitempty"` // the whole run's memory, tmpfs pages included; swap off
	Processes int           `json:"processes,omitempty"`    // processes and threads alive at once
	OpenFiles int           `json:"open_files,omitempty"`   // RLIMIT_NOFILE
	FileSize  int64         `json:"file_size_bytes,omitempty"`
	Stack     int64         `json:"stack_bytes,omitempty"`
	Stdout    int64         `json:"stdout_bytes,omitempty"` // bytes kept and allowed per stream
	Stderr    int64         `json:"stderr_bytes,omitempty"`
	TmpSize   int64         `json:"tmp_bytes,omitempty"` // each writable file system: the work dir, /tmp, /dev/shm
	TmpInodes int           `json:"tmp_inodes,omitempty"`
	Network   string        `json:"network,omitempty"` // NetworkNone (default) or NetworkLoopback
}

type limitsJSON Limits

type limitsWire struct {
	WallTimeMS int64 `json:"wall_time_ms,omitempty"`
	CPUTimeMS  int64 `json:"cpu_time_ms,omitempty"`
	*limitsJSON
}

// MarshalJSON writes the durations as milliseconds.
func (l Limits) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitsWire{l.WallTime.Milliseconds(), l.CPUTime.Milliseconds(), (*limitsJSON)(&l)})
}

// UnmarshalJSON reads the durations as milliseconds.
func (l *Limits) UnmarshalJSON(b []byte) error {
	w := limitsWire{limitsJSON: (*limitsJSON)(l)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	l.WallTime = time.Duration(w.WallTimeMS) * time.Millisecond
	l.CPUTime = time.Duration(w.CPUTimeMS) * time.Millisecond
	return nil
}

// Diagnostic locates the error of a syntax_error or runtime_error in the user's code.
type Diagnostic struct {
	Type    string `json:"type"`             // "SyntaxError", "ZeroDivisionError", "TypeError", …
	Message string `json:"message"`          // the interpreter's message, without the type
	File    string `json:"file,omitempty"`   // relative to the work directory
	Line    int    `json:"line,omitempty"`   // 1-based; 0 when unknown
	Column  int    `json:"column,omitempty"` // 1-based; 0 when unknown
	Hint    string `json:"hint,omitempty"`   // such as "the memory limit is 256 MiB"
}

// RunResult is what one sandboxed run did, the same for every backend.
//
// Exactly one of ExitCode and Signal is set once the program ran: ExitCode when it
// exited, Signal (a name such as "SIGSEGV") when a signal ended it, SIGKILL included
// when runbox killed it for a limit. Neither is set for sandbox_error.
//
// Stdout and Stderr hold raw bytes (a Go string may hold any bytes). In JSON
// each is a string when it is valid UTF-8, and otherwise the standard base64 of the
// bytes with "base64" in the matching *_encoding field, so the JSON stays valid.
type RunResult struct {
	RunID    string `json:"run_id"`
	Backend  string `json:"backend"`
	Language string `json:"language,omitempty"`
	Status   Status `json:"status"`
	ExitCode *int   `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	// Limit names the limit that fired: LimitWall or LimitCPU with timeout, LimitMemory
	// with oom, LimitStdout or LimitStderr with output_limit.
	Limit string `json:"limit,omitempty"`

	Stdout          string `json:"-"`
	Stderr          string `json:"-"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	StdoutBytes     int64  `json:"stdout_bytes"` // everything the program wrote, kept or not
	StderrBytes     int64  `json:"stderr_bytes"`

	WallTime   time.Duration `json:"-"`
	CPUTime    time.Duration `json:"-"` // of the whole run, all processes and threads
	PeakMemory int64         `json:"peak_memory_bytes"`

	Diagnostic *Diagnostic `json:"diagnostic,omitempty"`
	// Error says what went wrong on runbox's side, with sandbox_error.
	Error string `json:"error,omitempty"`
	// Limits are the effective limits of the run, defaults filled in.
	Limits Limits `json:"limits"`
}

type runResultJSON RunResult

type runResultWire struct {
	*runResultJSON
	Stdout         string  `json:"stdout"`
	StdoutEncoding string  `json:"stdout_encoding,omitempty"`
	Stderr         string  `json:"stderr"`
	StderrEncoding string  `json:"stderr_encoding,omitempty"`
	WallTimeMS     float64 `json:"wall_time_ms"`
	CPUTimeMS      float64 `json:"cpu_time_ms"`
}

// MarshalJSON encodes the output fields as text or base64 and durations as milliseconds.
func (r RunResult) MarshalJSON() ([]byte, error) {
	w := runResultWire{runResultJSON: (*runResultJSON)(&r),
		WallTimeMS: ms(r.WallTime), CPUTimeMS: ms(r.CPUTime)}
	w.Stdout, w.StdoutEncoding = EncodeText(r.Stdout)
	w.Stderr, w.StderrEncoding = EncodeText(r.Stderr)
	return json.Marshal(w)
}

// UnmarshalJSON reverses MarshalJSON.
func (r *RunResult) UnmarshalJSON(b []byte) error {
	w := runResultWire{runResultJSON: (*runResultJSON)(r)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	if r.Stdout, err = decodeBytes(w.Stdout, w.StdoutEncoding); err != nil {
		return err
	}
	if r.Stderr, err = decodeBytes(w.Stderr, w.StderrEncoding); err != nil {
		return err
	}
	r.WallTime = time.Duration(w.WallTimeMS * float64(time.Millisecond))
	r.CPUTime = time.Duration(w.CPUTimeMS * float64(time.Millisecond))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// EncodeText returns output bytes (held in a string) as JSON carries them: the text
// itself when it is valid UTF-8, else its standard base64 with the encoding "base64".
func EncodeText(s string) (text, encoding string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), "base64"
}

func decodeBytes(s, enc string) (string, error) {
	if enc != "base64" {
		return s, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}
