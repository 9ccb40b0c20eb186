package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/queue"
	"github.com/runboxhq/runbox/sandbox"
)

// Bounds of the submissions API.
const (
	// MaxBatch is the most submissions one POST may carry, and the most ids one GET
	// may ask for.
	MaxBatch = 1000
	// getParallel is how many records one GET reads at once.
	getParallel = 32
)

// validID is the shape of a submission id (the server makes 32 hex digits); anything
// else never reaches NATS, whose keys it could otherwise wildcard.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (s *Server) submissionRoutes() {
	s.mux.HandleFunc("POST /v1/submissions", s.withQueue(s.postSubmissions))
	s.mux.HandleFunc("GET /v1/submissions", s.withQueue(s.getSubmissions))
	s.mux.HandleFunc("GET /v1/submissions/{id}", s.withQueue(s.getSubmission))
}

// withQueue answers 404 on a server without a queue.
func (s *Server) withQueue(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Submissions == nil {
			writeError(w, http.StatusNotFound, "", "this server has no submission queue (it was started with --submissions=false)")
			return
		}
		h(w, r)
	}
}

// submitBody is one submission, or a batch of them in "submissions".
type submitBody struct {
	api.SubmitRequest
	Submissions []api.SubmitRequest `json:"submissions"`
}

// postSubmissions is POST /v1/submissions: validate every submission (a batch with a
// bad one is refused whole, 400 with each item's error), record and enqueue them,
// and answer their ids at once: 202, or 429 with Retry-After when the queue is full.
func (s *Server) postSubmissions(w http.ResponseWriter, r *http.Request) {
	if s.isDraining() {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, "", "%v", errDraining)
		return
	}
	var body submitBody
	if err := s.decodeBody(w, r, &body); err != nil {
		answerError(w, err)
		return
	}
	batch := body.Submissions != nil
	reqs := []api.SubmitRequest{body.SubmitRequest}
	if batch {
		switch {
		case !reflect.ValueOf(body.SubmitRequest).IsZero():
			writeError(w, http.StatusBadRequest, "submissions", `a batch has "submissions" and nothing else`)
			return
		case len(body.Submissions) == 0 || len(body.Submissions) > MaxBatch:
			writeError(w, http.StatusBadRequest, "submissions", "a batch has 1 to %d submissions, not %d", MaxBatch, len(body.Submissions))
			return
		}
		reqs = body.Submissions
	}
	answers := make([]api.Submitted, len(reqs))
	jobs := make([]queue.Job, 0, len(reqs))
	invalid := false
	now := time.Now().UTC()
	for i, req := range reqs {
		job, err := s.jobFrom(req, now)
		if err != nil {
			code, field, msg := errorAnswer(err)
			if batch && field != "" {
				field = fmt.Sprintf("submissions[%d].%s", i, field)
			}
			answers[i] = api.Submitted{Error: msg, Field: field, Code: code}
			invalid = true
			continue
		}
		jobs = append(jobs, job)
	}
	if !batch && invalid {
		writeError(w, answers[0].Code, answers[0].Field, "%s", answers[0].Error)
		return
	}
	if invalid {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid submissions in the batch; none was queued", "submissions": answers})
		return
	}
	errs := s.cfg.Submissions.Submit(r.Context(), jobs)
	status := http.StatusAccepted
	for i, err := range errs {
		answers[i] = api.Submitted{ID: jobs[i].ID, State: api.SubmissionQueued}
		if err == nil {
			continue
		}
		code, msg := submitError(err)
		answers[i] = api.Submitted{Error: msg, Code: code}
		if status == http.StatusAccepted || code == http.StatusTooManyRequests {
			status = code
		}
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int(DefaultRetryAfter.Seconds())))
	}
	if !batch {
		if status != http.StatusAccepted {
			writeError(w, status, "", "%s", answers[0].Error)
			return
		}
		w.Header().Set("Location", "/v1/submissions/"+answers[0].ID)
		writeJSON(w, status, answers[0])
		return
	}
	writeJSON(w, status, map[string]any{"submissions": answers})
}

// jobFrom validates a submission as POST /v1/runs would its run, and makes its job.
func (s *Server) jobFrom(req api.SubmitRequest, now time.Time) (queue.Job, error) {
	spec, err := s.specFrom(req.RunRequest)
	if err != nil {
		return queue.Job{}, err
	}
	if req.CallbackURL != "" {
		cb := s.cfg.Callbacks
		if cb == nil {
			cb = &queue.Callbacks{}
		}
		if err := cb.Check(req.CallbackURL); err != nil {
			return queue.Job{}, badRequest("callback_url", "%s", strings.TrimPrefix(err.Error(), "queue: "))
		}
	}
	id := rand.Text()
	spec.RunID = id
	return queue.Job{ID: id, Spec: spec, CallbackURL: req.CallbackURL, Idempotent: req.Idempotent, SubmittedAt: now}, nil
}

// submitError is the HTTP status and message of a job the queue refused.
func submitError(err error) (int, string) {
	switch {
	case errors.Is(err, queue.ErrFull):
		return http.StatusTooManyRequests, "the submission queue is full; retry later"
	case errors.Is(err, queue.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	default:
		return http.StatusServiceUnavailable, "the submission queue is unavailable: " + err.Error()
	}
}

// getSubmission is GET /v1/submissions/{id}: its record, or with ?watch=1 its
// records as NDJSON as they change, until it is done.
func (s *Server) getSubmission(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID.MatchString(id) {
		writeError(w, http.StatusBadRequest, "id", "bad submission id %q", id)
		return
	}
	rec, err := s.cfg.Submissions.Get(r.Context(), id)
	if err != nil {
		answerQueueError(w, id, err)
		return
	}
	if wantsWatch(r) {
		s.watch(w, r, []*api.Submission{rec}, nil)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// getSubmissions is GET /v1/submissions?ids=a,b: the records of those submissions
// ({"id", "error"} for one that does not exist), or with ?watch=1 their changes.
func (s *Server) getSubmissions(w http.ResponseWriter, r *http.Request) {
	var ids []string
	seen := map[string]bool{}
	for _, v := range r.URL.Query()["ids"] {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id == "" || seen[id] {
				continue
			}
			if !validID.MatchString(id) {
				writeError(w, http.StatusBadRequest, "ids", "bad submission id %q", id)
				return
			}
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 || len(ids) > MaxBatch {
		writeError(w, http.StatusBadRequest, "ids", "give 1 to %d submission ids: ?ids=a,b", MaxBatch)
		return
	}
	recs := make([]*api.Submission, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, getParallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			recs[i], errs[i] = s.cfg.Submissions.Get(r.Context(), id)
		})
	}
	wg.Wait()
	out := make([]any, len(ids))
	var found []*api.Submission
	for i, err := range errs {
		switch {
		case err == nil:
			out[i] = recs[i]
			found = append(found, recs[i])
		case errors.Is(err, queue.ErrNotFound):
			out[i] = api.Submitted{ID: ids[i], Error: "no such submission", Code: http.StatusNotFound}
		default:
			answerQueueError(w, ids[i], err)
			return
		}
	}
	if wantsWatch(r) {
		var missing []any
		for _, o := range out {
			if m, ok := o.(api.Submitted); ok {
				missing = append(missing, m)
			}
		}
		s.watch(w, r, found, missing)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"submissions": out})
}

func answerQueueError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, queue.ErrNotFound) {
		writeError(w, http.StatusNotFound, "", "no such submission: %s", id)
		return
	}
	writeError(w, http.StatusServiceUnavailable, "", "the submission queue is unavailable: %v", err)
}

// wantsWatch reports whether a GET asks for the records as they change.
func wantsWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return v == "1" || v == "true"
}

// watch streams NDJSON: the missing ids' errors, then each record as it is now and as
// it changes, until every one is done, the client leaves, or the server shuts down.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, recs []*api.Submission, missing []any) {
	w.Header().Set("Content-Type", ndjson)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	ev := newEventWriter(w)
	for _, m := range missing {
		ev.write(m)
	}
	var ids []string
	for _, rec := range recs {
		ids = append(ids, rec.ID)
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.watchCtx, cancel)
	defer stop()
	_ = s.cfg.Submissions.Watch(ctx, ids, func(rec api.Submission) { ev.write(rec) })
}

// Ran counts a run of an in-process worker in the metrics, as the APIs' runs are.
func (s *Server) Ran(res *sandbox.Result, took time.Duration) {
	s.record("submissions", res, nil, took)
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}
