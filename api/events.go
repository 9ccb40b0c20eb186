package api

import "time"

// EventType names an event of a run's stream. See docs/events.md.
type EventType string

const (
	EventStarted  EventType = "started"  // the process runs: Pid, Argv
	EventLine     EventType = "line"     // one line of output: Stream, Text, Kind
	EventProgress EventType = "progress" // a progress reading: Progress (the line is not repeated as a line event)
	EventSignal   EventType = "signal"   // runbox forwarded a signal to the process tree: Signal
	EventExited   EventType = "exited"   // the run is over: Result (always the last event)
	// A sandboxed run's stream (the server's) starts with EventStarted (RunID), carries
	// EventLine events, and ends with EventResult.
	EventResult EventType = "result" // the sandboxed run is over: Run (always the last event)
)

// Event is one record of a run's NDJSON event stream (`runbox exec --events`, and the
// server's streaming responses). Fields not used by a type are omitted.
type Event struct {
	Type EventType `json:"type"`
	Seq  uint64    `json:"seq"`  // 1, 2, 3… in emission order
	Time time.Time `json:"time"` // when runbox saw it (RFC 3339, nanoseconds, UTC)

	Pid   int      `json:"pid,omitempty"`
	RunID string   `json:"run_id,omitempty"`
	Argv  []string `json:"argv,omitempty"`

	Stream string `json:"stream,omitempty"` // "stdout" or "stderr"
	// Text is the line without its terminator. When the line is not valid UTF-8, Text
	// holds its base64 encoding and Encoding is "base64".
	Text     string `json:"text,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	// Kind says how the line ended: "line" ("\n" or "\r\n"), "update" (a lone "\r"),
	// "partial" (a piece of a line longer than 64 KiB), "eof" (the stream ended without
	// a newline).
	Kind string `json:"kind,omitempty"`

	Progress *Progress      `json:"progress,omitempty"`
	Signal   string         `json:"signal,omitempty"`
	Result   *ProcessResult `json:"result,omitempty"`
	Run      *RunResult     `json:"run,omitempty"`
}

// Progress is a progress reading taken from a line of output.
type Progress struct {
	// Percent is 0–100, or -1 when the tool reports no total (dd).
	Percent float64 `json:"percent"`
	Done    float64 `json:"done,omitempty"`
	Total   float64 `json:"total,omitempty"`
	Unit    string  `json:"unit,omitempty"`
	// Line is the text the reading came from.
	Line string `json:"line,omitempty"`
}
