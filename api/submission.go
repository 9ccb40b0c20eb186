package api

import "time"

// SubmitRequest is one asynchronous run (POST /v1/submissions): a RunRequest, and
// what to do with its result besides keeping it.
type SubmitRequest struct {
	RunRequest
	// CallbackURL, when set, receives the finished Submission as a POST (signed, and
	// retried; see docs/api.md).
	CallbackURL string `json:"callback_url,omitempty"`
	// Idempotent says the run may be run again when the worker running it dies before
	// it reports. Without it a run that started is run at most once: a lost worker's
	// run ends as sandbox_error.
	Idempotent bool `json:"idempotent,omitempty"`
}

// SubmissionState is where a submission is.
type SubmissionState string

const (
	SubmissionQueued  SubmissionState = "queued"  // waiting for a worker
	SubmissionRunning SubmissionState = "running" // a worker runs it
	SubmissionDone    SubmissionState = "done"    // Result is set
)

// Submission is an asynchronous run and, once done, its result
// (GET /v1/submissions/{id}).
type Submission struct {
	ID          string          `json:"id"`
	State       SubmissionState `json:"state"`
	SubmittedAt time.Time       `json:"submitted_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
	// Attempt is the delivery to a worker that started it (1 for the first).
	Attempt int `json:"attempt,omitempty"`
	// Worker names the worker that ran it (host-pid).
	Worker string `json:"worker,omitempty"`
	// Result is the run's result, the same as POST /v1/runs answers, when done.
	Result   *RunResult `json:"result,omitempty"`
	Callback *Callback  `json:"callback,omitempty"`
}

// Callback is the delivery of a submission's result to its callback URL.
type Callback struct {
	URL string `json:"url"`
	// State is "pending", "delivered" or "failed".
	State    string `json:"state"`
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Callback states.
const (
	CallbackPending   = "pending"
	CallbackDelivered = "delivered"
	CallbackFailed    = "failed"
)

// Submitted is one item of the answer to POST /v1/submissions: the id and state of
// an accepted submission, or why it was refused (with the HTTP status it would have
// had alone).
type Submitted struct {
	ID    string          `json:"id,omitempty"`
	State SubmissionState `json:"state,omitempty"`
	Error string          `json:"error,omitempty"`
	Field string          `json:"field,omitempty"`
	Code  int             `json:"code,omitempty"`
}
