package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/sandbox"
)

// Names of the JetStream objects, shared by every API node and worker.
const (
	StreamName   = "RUNBOX_JOBS"
	BucketName   = "runbox_submissions"
	ConsumerName = "runbox-workers"
	subject      = "runbox.jobs"
)

// Defaults of Config.
const (
	DefaultMaxQueued      = 100_000
	DefaultMaxQueuedBytes = 1 << 30
	DefaultResultTTL      = 24 * time.Hour
	DefaultAckWait        = 30 * time.Second
	DefaultMaxAttempts    = 3
	// dedupWindow is how long the stream remembers a job's id, so that a publish
	// retried after a lost acknowledgement does not enqueue it twice.
	dedupWindow = 2 * time.Minute
	// attemptTimeout bounds one NATS operation; opTimeout the operation with its
	// retries (a cluster elects a new leader within a few seconds).
	attemptTimeout = 5 * time.Second
	opTimeout      = 30 * time.Second
	// submitParallel is how many jobs of a batch are enqueued at once.
	submitParallel = 32
	// headroom is kept under the server's largest message for headers.
	headroom = 4 << 10
)

// Errors of Submit and Get.
var (
	ErrFull     = errors.New("queue: the queue is full")
	ErrNotFound = errors.New("queue: no such submission")
	ErrTooLarge = errors.New("queue: the submission is larger than the queue's largest message")
)

// Config sizes the stream and bucket and sets the consumer's redelivery. Zero fields
// take the defaults. Every API node should be given the same: the last one to start
// sets them.
type Config struct {
	// Replicas of the stream and bucket: 1, or 3 (or 5) on a cluster of as many nodes.
	Replicas int
	// MaxQueued and MaxQueuedBytes bound the jobs not yet acked; past them a
	// submission is refused with ErrFull.
	MaxQueued      int64
	MaxQueuedBytes int64
	// ResultTTL is how long a record (queued, running or done) is kept.
	ResultTTL time.Duration
	// AckWait is how long a worker may hold a job without a sign of life before it is
	// given to another; workers send one every AckWait/3 while a job runs.
	AckWait time.Duration
	// MaxAttempts is how many workers may be given a job; one more delivery finishes
	// it as sandbox_error.
	MaxAttempts int
}

func (c Config) withDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.ResultTTL <= 0 {
		c.ResultTTL = DefaultResultTTL
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	return c
}

// Job is a submission as the stream carries it: a spec the API validated within its
// maxima, and what to do with the result.
type Job struct {
	ID          string       `json:"id"`
	Spec        sandbox.Spec `json:"spec"`
	CallbackURL string       `json:"callback_url,omitempty"`
	Idempotent  bool         `json:"idempotent,omitempty"`
	SubmittedAt time.Time    `json:"submitted_at"`
}

// Queue is the stream, bucket and consumer on one NATS connection. Safe for
// concurrent use.
type Queue struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	kv       jetstream.KeyValue
	cons     jetstream.Consumer
	ackWait  time.Duration
	attempts int // deliveries a job may run in; the one after finishes it
	maxValue int
}

// errNoPeers is JetStream's "no suitable peers for placement" (JSClusterNoPeersErr):
// a cluster that is still forming does not yet see enough peers online for the
// replicas asked for. Open waits for them; elsewhere it stays an error.
var errNoPeers = &jetstream.APIError{ErrorCode: 10005}

// Open creates the stream, bucket and consumer, or updates them to cfg, retrying
// while the cluster has no JetStream leader or does not yet see enough peers for the
// replicas, until ctx ends.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Queue, error) {
	cfg = cfg.withDefaults()
	q, err := newQueue(nc)
	if err != nil {
		return nil, err
	}
	err = retryUntil(ctx, func(ctx context.Context) error {
		var err error
		q.stream, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: StreamName, Description: "runbox submissions waiting for a worker",
			Subjects: []string{subject}, Retention: jetstream.WorkQueuePolicy,
			Discard: jetstream.DiscardNew, MaxMsgs: cfg.MaxQueued, MaxBytes: cfg.MaxQueuedBytes,
			MaxMsgSize: int32(q.maxValue), Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
			Duplicates: dedupWindow,
		})
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		q.kv, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: BucketName, Description: "runbox submissions: state and result",
			TTL: cfg.ResultTTL, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
			MaxValueSize: int32(q.maxValue), History: 1,
		})
		if err != nil {
			return fmt.Errorf("bucket: %w", err)
		}
		q.cons, err = q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: ConsumerName, Description: "runbox workers",
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: cfg.AckWait,
			MaxDeliver: cfg.MaxAttempts + 1, MaxAckPending: -1,
			Replicas: cfg.Replicas,
		})
		if err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		return nil
	}, errNoPeers)
	if err != nil {
		return nil, fmt.Errorf("queue: set up: %w", err)
	}
	q.setConsumer(q.cons)
	return q, nil
}

// Bind finds the stream, bucket and consumer an API node made, waiting for them
// until ctx ends.
func Bind(ctx context.Context, nc *nats.Conn) (*Queue, error) {
	q, err := newQueue(nc)
	if err != nil {
		return nil, err
	}
	err = retryUntil(ctx, func(ctx context.Context) error {
		var err error
		if q.stream, err = q.js.Stream(ctx, StreamName); err != nil {
			return err
		}
		if q.kv, err = q.js.KeyValue(ctx, BucketName); err != nil {
			return err
		}
		q.cons, err = q.stream.Consumer(ctx, ConsumerName)
		return err
	}, jetstream.ErrStreamNotFound, jetstream.ErrBucketNotFound, jetstream.ErrConsumerNotFound)
	if err != nil {
		return nil, fmt.Errorf("queue: find the queue (is an API node up?): %w", err)
	}
	q.setConsumer(q.cons)
	return q, nil
}

func newQueue(nc *nats.Conn) (*Queue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &Queue{nc: nc, js: js, maxValue: int(nc.MaxPayload()) - headroom}, nil
}

func (q *Queue) setConsumer(c jetstream.Consumer) {
	cfg := c.CachedInfo().Config
	q.ackWait, q.attempts = cfg.AckWait, cfg.MaxDeliver-1
}

// Submit records and enqueues jobs, at most submitParallel at once; errs[i] is job
// i's error: ErrFull, ErrTooLarge, or NATS failing for longer than a leader election.
// A batch that does not fit in the queue is refused whole.
func (q *Queue) Submit(ctx context.Context, jobs []Job) (errs []error) {
	errs = make([]error, len(jobs))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	var info *jetstream.StreamInfo
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		info, err = q.stream.Info(ctx)
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("queue: %w", err))
	}
	if int64(info.State.Msgs)+int64(len(jobs)) > info.Config.MaxMsgs {
		return fail(ErrFull)
	}
	sem := make(chan struct{}, submitParallel)
	var wg sync.WaitGroup
	for i := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = q.submit(ctx, jobs[i])
		})
	}
	wg.Wait()
	return errs
}

func (q *Queue) submit(ctx context.Context, job Job) error {
	data, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if len(data) > q.maxValue {
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrTooLarge, len(data), q.maxValue)
	}
	rec := &api.Submission{ID: job.ID, State: api.SubmissionQueued, SubmittedAt: job.SubmittedAt}
	if job.CallbackURL != "" {
		rec.Callback = &api.Callback{URL: job.CallbackURL, State: api.CallbackPending}
	}
	// The record first: a worker may take the job the moment it is published.
	if _, err := q.put(ctx, rec, 0); err != nil {
		return fmt.Errorf("queue: record: %w", err)
	}
	err = retry(ctx, func(ctx context.Context) error {
		_, err := q.js.Publish(ctx, subject, data, jetstream.WithMsgID(job.ID))
		return err
	})
	if err != nil {
		_ = q.kv.Delete(context.WithoutCancel(ctx), job.ID)
		if full(err) {
			return ErrFull
		}
		return fmt.Errorf("queue: enqueue: %w", err)
	}
	return nil
}

// Get returns the record of submission id, or ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (*api.Submission, error) {
	rec, _, err := q.get(ctx, id)
	return rec, err
}

// get returns a record and its revision.
func (q *Queue) get(ctx context.Context, id string) (*api.Submission, uint64, error) {
	var e jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		e, err = q.kv.Get(ctx, id)
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, 0, ErrNotFound
	case err != nil:
		return nil, 0, fmt.Errorf("queue: %w", err)
	}
	var rec api.Submission
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("queue: record of %s: %w", id, err)
	}
	return &rec, e.Revision(), nil
}

// put writes rec if the stored record is still at revision rev (0: there is none),
// and returns the new revision; jetstream.ErrKeyRevisionMismatch or ErrKeyExists when
// another write came first. A write retried after its acknowledgement was lost is
// recognised as done.
func (q *Queue) put(ctx context.Context, rec *api.Submission, rev uint64) (uint64, error) {
	data, err := q.encode(rec)
	if err != nil {
		return 0, err
	}
	var newRev uint64
	tries := 0
	err = retry(ctx, func(ctx context.Context) error {
		tries++
		if rev == 0 {
			newRev, err = q.kv.Create(ctx, rec.ID, data)
		} else {
			newRev, err = q.kv.Update(ctx, rec.ID, data, rev)
		}
		if err != nil && tries > 1 && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)) {
			if e, gerr := q.kv.Get(ctx, rec.ID); gerr == nil && bytes.Equal(e.Value(), data) {
				newRev, err = e.Revision(), nil
			}
		}
		return err
	})
	return newRev, err
}

// encode marshals a record within the bucket's largest value, cutting the result's
// output (and saying so) when it does not fit.
func (q *Queue) encode(rec *api.Submission) ([]byte, error) {
	data, err := json.Marshal(rec)
	for err == nil && len(data) > q.maxValue && rec.Result != nil {
		r := *rec.Result
		if len(r.Stdout) == 0 && len(r.Stderr) == 0 {
			break
		}
		// Each stream gives its share of the excess, and a little more: JSON may
		// escape a byte into several.
		over, out := len(data)-q.maxValue, len(r.Stdout)+len(r.Stderr)
		cut := func(s *string, trunc *bool) {
			if n := len(*s); n > 0 {
				*s, *trunc = (*s)[:max(0, n-over*n/out-n/100-1024)], true
			}
		}
		cut(&r.Stdout, &r.StdoutTruncated)
		cut(&r.Stderr, &r.StderrTruncated)
		c := *rec
		c.Result = &r
		rec = &c
		data, err = json.Marshal(rec)
	}
	if err == nil && len(data) > q.maxValue {
		err = fmt.Errorf("%w: record of %d bytes", ErrTooLarge, len(data))
	}
	return data, err
}

// Watch calls fn with the records of ids as they are now, then with each change,
// until every one is done (or expired), or ctx ends.
func (q *Queue) Watch(ctx context.Context, ids []string, fn func(api.Submission)) error {
	// WatchFiltered rewrites its argument's elements into subjects.
	w, err := q.kv.WatchFiltered(ctx, slices.Clone(ids))
	if err != nil {
		return fmt.Errorf("queue: watch: %w", err)
	}
	defer w.Stop()
	open := make(map[string]bool, len(ids))
	for _, id := range ids {
		open[id] = true
	}
	for len(open) > 0 {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e = <-w.Updates():
		}
		if e == nil {
			continue // the end of the current values
		}
		if e.Operation() != jetstream.KeyValuePut {
			delete(open, e.Key())
			continue
		}
		var rec api.Submission
		if json.Unmarshal(e.Value(), &rec) != nil || !open[rec.ID] {
			continue
		}
		fn(rec)
		if rec.State == api.SubmissionDone {
			delete(open, rec.ID)
		}
	}
	return nil
}

// Stats is the state of the queue, for `runbox doctor`.
type Stats struct {
	Queued      uint64 // jobs not yet acked (waiting or running)
	Bytes       uint64
	MaxQueued   int64
	Waiting     uint64 // jobs no worker holds
	Running     int    // jobs a worker holds
	Redelivered int
	Workers     int // pull requests of idle workers waiting for a job
	Records     uint64
	Replicas    int
	Cluster     string
	Leader      string
	Peers       []Peer
}

// Peer is a replica of the stream other than the leader.
type Peer struct {
	Name    string
	Current bool
	Offline bool
}

// Stats reads the stream, consumer and bucket.
func (q *Queue) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	err := retry(ctx, func(ctx context.Context) error {
		si, err := q.stream.Info(ctx)
		if err != nil {
			return err
		}
		ci, err := q.cons.Info(ctx)
		if err != nil {
			return err
		}
		ks, err := q.kv.Status(ctx)
		if err != nil {
			return err
		}
		st = Stats{Queued: si.State.Msgs, Bytes: si.State.Bytes, MaxQueued: si.Config.MaxMsgs,
			Waiting: ci.NumPending, Running: ci.NumAckPending, Redelivered: ci.NumRedelivered,
			Workers: ci.NumWaiting, Records: ks.Values(), Replicas: si.Config.Replicas}
		if c := si.Cluster; c != nil {
			st.Cluster, st.Leader = c.Name, c.Leader
			for _, p := range c.Replicas {
				st.Peers = append(st.Peers, Peer{Name: p.Name, Current: p.Current, Offline: p.Offline})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &st, nil
}

// full reports whether a publish was refused because the stream is at its bounds.
func full(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == jsErrStoreFailed
}

// jsErrStoreFailed is the code of "maximum messages exceeded" and "maximum bytes
// exceeded" when a stream discards new messages.
const jsErrStoreFailed jetstream.ErrorCode = 10077

// permanent reports whether err is an answer, not a failure to get one: retrying
// would get the same.
func permanent(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) ||
		errors.Is(err, jetstream.ErrInvalidKey) || errors.Is(err, nats.ErrMaxPayload) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrMsgAlreadyAckd) ||
		(errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500) || full(err)
}

// retry calls fn, each call bounded by attemptTimeout, until it succeeds, fails for
// good, or opTimeout (or ctx) ends: NATS answers nothing while a cluster elects a new
// leader, or while the client reconnects.
func retry(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return retryUntil(ctx, fn)
}

// retryUntil is retry bounded by ctx alone; errors in also are retried.
func retryUntil(ctx context.Context, fn func(context.Context) error, also ...error) error {
	wait := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(actx)
		cancel()
		again := err != nil && !permanent(err)
		for _, a := range also {
			again = again || errors.Is(err, a)
		}
		if !again {
			return err
		}
		if sleep(ctx, wait); ctx.Err() != nil {
			return err
		}
		wait = min(2*wait, time.Second)
	}
}
