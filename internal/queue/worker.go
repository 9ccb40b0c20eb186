package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/sandbox"
)

// fetchWait bounds one fetch of jobs: how long a worker that stops waits for the
// fetch it has in progress.
const fetchWait = time.Second

// Worker runs the queue's jobs on a backend. Set the fields, then call Run once.
type Worker struct {
	Queue   *Queue
	Backend sandbox.Backend
	// Concurrency is how many jobs run at once (default 1); the worker holds no more
	// jobs than that.
	Concurrency int
	// Name says which worker ran a submission (default host-pid).
	Name string
	// Drain is how long jobs in progress may finish once Run's context ends; then
	// they are stopped (their results say timeout). Zero: until they finish.
	Drain time.Duration
	// Callbacks sends results to their callback URLs; nil: a submission with one has
	// its callback marked failed.
	Callbacks *Callbacks
	// Logger receives a record per job (nil: none).
	Logger *slog.Logger
	// Ran, when set, is called after each job that ran, with its result (metrics).
	Ran func(res *sandbox.Result, took time.Duration)
}

// Run fetches and runs jobs until ctx ends, then stops fetching, lets the jobs in
// progress finish (up to Drain), acks them, and returns.
func (w *Worker) Run(ctx context.Context) error {
	if w.Queue == nil || w.Backend == nil {
		return errors.New("queue: a worker needs a queue and a backend")
	}
	n := max(w.Concurrency, 1)
	if w.Name == "" {
		host, _ := os.Hostname()
		w.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Jobs run on past ctx's end, until the drain ends.
	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	slots := make(chan struct{}, n)
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := 1
		for free < n && len(slots) < n {
			slots <- struct{}{}
			free++
		}
		batch, err := w.Queue.cons.Fetch(free, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			for range free {
				<-slots
			}
			log.Warn("fetch", "err", err)
			sleep(ctx, 250*time.Millisecond)
			continue
		}
		for msg := range batch.Messages() {
			free--
			if ctx.Err() != nil {
				// Stopping: give it back to the other workers at once.
				_ = msg.Nak()
				<-slots
				continue
			}
			wg.Go(func() {
				defer func() { <-slots }()
				w.handle(runCtx, msg, log)
			})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			log.Warn("fetch", "err", err)
		}
		for range free {
			<-slots
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var drain <-chan time.Time
	if w.Drain > 0 {
		t := time.NewTimer(w.Drain)
		defer t.Stop()
		drain = t.C
	}
	select {
	case <-done:
		return nil
	case <-drain:
		stopRuns()
		<-done
		return fmt.Errorf("queue: jobs still running at the end of the drain (%v) were stopped", w.Drain)
	}
}

// sleep waits d, or less when ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// handle takes one delivery of a job to its end: run and acked, or given back.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, log *slog.Logger) {
	stopBeat := w.heartbeat(msg)
	defer stopBeat()
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil || job.ID == "" {
		log.Error("a job that is not one", "seq", md.Sequence.Stream, "err", err)
		_ = msg.TermWithReason("not a runbox job")
		return
	}
	log = log.With("submission", job.ID, "attempt", md.NumDelivered)
	rec, rev, err := w.Queue.get(ctx, job.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		// Expired, or written by a client that is not the API: start afresh.
		rec, rev = &api.Submission{ID: job.ID, SubmittedAt: job.SubmittedAt}, 0
		if job.CallbackURL != "" {
			rec.Callback = &api.Callback{URL: job.CallbackURL, State: api.CallbackPending}
		}
	case err != nil:
		log.Warn("read the record", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	var res *sandbox.Result
	switch {
	case rec.State == api.SubmissionDone:
		// Run already; its ack was lost, or its callback is still owed.
		w.finish(ctx, msg, rec, rev, log)
		return
	case rec.State == api.SubmissionRunning && rec.Attempt < int(md.NumDelivered) && !job.Idempotent &&
		int(md.NumDelivered) == rec.Attempt+1 && int(md.NumDelivered) <= w.Queue.attempts:
		// Given again while the record says an earlier delivery runs it: its worker died,
		// or only its signs of life were lost (NATS away for longer than the ack wait,
		// as while a cluster elects a leader). Give it one more ack wait to report;
		// the next delivery decides (the last one possible always does).
		log.Info("running elsewhere; waiting for its report", "worker", rec.Worker, "its_attempt", rec.Attempt)
		_ = msg.NakWithDelay(w.Queue.ackWait)
		return
	case rec.State == api.SubmissionRunning && rec.Attempt < int(md.NumDelivered) && !job.Idempotent:
		res = w.failed(&job, fmt.Sprintf("the worker running it (%s, attempt %d) stopped before it reported; "+
			"not run again, as it may have run (submit it with \"idempotent\": true to allow that)", rec.Worker, rec.Attempt))
	case int(md.NumDelivered) > w.Queue.attempts:
		res = w.failed(&job, fmt.Sprintf("not run: given to workers %d times, and none finished it", w.Queue.attempts))
	default:
		now := time.Now().UTC()
		rec.State, rec.StartedAt, rec.Attempt, rec.Worker = api.SubmissionRunning, &now, int(md.NumDelivered), w.Name
		rev, err = w.Queue.put(ctx, rec, rev)
		if err != nil {
			// Another delivery of the job moved first, or NATS is away: it comes back.
			log.Warn("mark running", "err", err)
			_ = msg.NakWithDelay(w.Queue.ackWait)
			return
		}
		start := time.Now()
		res, err = w.Backend.Run(ctx, job.Spec)
		if res == nil {
			res = w.failed(&job, fmt.Sprintf("the worker could not run it: %v", err))
		}
		if w.Ran != nil {
			w.Ran(res, time.Since(start))
		}
	}
	now := time.Now().UTC()
	rec.State, rec.Result, rec.FinishedAt = api.SubmissionDone, res, &now
	if rec.Worker == "" {
		rec.Worker = w.Name
	}
	rev, err = w.Queue.put(ctx, rec, rev)
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		// Another delivery finished it first: its result stands.
		log.Warn("the submission was finished by another delivery", "err", err)
		_ = msg.Ack()
		return
	case err != nil:
		log.Error("write the result", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	log.Info("done", "status", res.Status, "worker", w.Name)
	w.finish(ctx, msg, rec, rev, log)
}

// failed is the result of a job that did not run.
func (w *Worker) failed(job *Job, why string) *sandbox.Result {
	return &sandbox.Result{RunID: job.Spec.RunID, Backend: w.Backend.Name(), Language: job.Spec.Language,
		Status: sandbox.StatusSandboxError, Error: why}
}

// finish sends the callback a done record still owes, then acks the job.
func (w *Worker) finish(ctx context.Context, msg jetstream.Msg, rec *api.Submission, rev uint64, log *slog.Logger) {
	if cb := rec.Callback; cb != nil && cb.State == api.CallbackPending {
		c := *cb
		if w.Callbacks == nil {
			c.State, c.Error = api.CallbackFailed, "this worker sends no callbacks"
		} else {
			body, _ := json.Marshal(rec)
			n, err := w.Callbacks.Send(ctx, c.URL, rec.ID, body)
			c.Attempts += n
			c.State, c.Error = api.CallbackDelivered, ""
			if err != nil {
				c.State, c.Error = api.CallbackFailed, err.Error()
			}
		}
		rec.Callback = &c
		if _, err := w.Queue.put(ctx, rec, rev); err != nil {
			log.Warn("record the callback", "err", err)
		}
	}
	if err := retry(ctx, func(ctx context.Context) error { return msg.DoubleAck(ctx) }); err != nil {
		// The job comes back and is acked then, without running.
		log.Warn("ack", "err", err)
	}
}

// heartbeat tells the server the job is in progress every AckWait/3 until stopped.
func (w *Worker) heartbeat(msg jetstream.Msg) (stop func()) {
	t := time.NewTicker(max(w.Queue.ackWait/3, 100*time.Millisecond))
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}
