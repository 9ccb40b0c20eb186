package api

// ProcessResult is the JSON form of one finished child process, as printed by
// `runbox exec --json`.
//
// Exactly one of ExitCode and Signal is set when the process ran: ExitCode when it exited,
// Signal (a name such as "SIGKILL") when a signal ended it. Neither is set when it never
// started (Status "start_error").
//
// Stdout and Stderr hold the captured bytes as a string when they are valid UTF-8. When
// they are not, the field holds the standard base64 encoding of the exact bytes and the
// matching *Encoding field says "base64", so the JSON stays valid and nothing is lost.
type ProcessResult struct {
	Argv            []string `json:"argv"`
	Pid             int      `json:"pid,omitempty"`
	Status          string   `json:"status"`
	ExitCode        *int     `json:"exit_code"`
	Signal          *string  `json:"signal"`
	TimedOut        bool     `json:"timed_out"`
	DurationMS      float64  `json:"duration_ms"`
	UserCPUMS       float64  `json:"user_cpu_ms"`
	SysCPUMS        float64  `json:"sys_cpu_ms"`
	MaxRSSBytes     int64    `json:"max_rss_bytes"`
	Stdout          string   `json:"stdout"`
	StdoutEncoding  string   `json:"stdout_encoding,omitempty"`
	Stderr          string   `json:"stderr"`
	StderrEncoding  string   `json:"stderr_encoding,omitempty"`
	StdoutTruncated bool     `json:"stdout_truncated"`
	StderrTruncated bool     `json:"stderr_truncated"`
	StdoutBytes     int64    `json:"stdout_bytes"`
	StderrBytes     int64    `json:"stderr_bytes"`
	Containment     string   `json:"containment"`
	// OutputIncomplete is true when an escaped process still held the output pipes open
	// when the drain bound ran out, so output written after that is missing.
	OutputIncomplete bool `json:"output_incomplete,omitempty"`
	// Progress is the last progress reading, when progress was being followed.
	Progress *Progress `json:"progress,omitempty"`
	// Interrupted is set when runbox forwarded an interrupt (SIGINT) to the process.
	Interrupted bool   `json:"interrupted,omitempty"`
	Error       string `json:"error,omitempty"`
}
