// Package queue holds runbox's asynchronous submissions on NATS JetStream: a
// work-queue stream of jobs (one per submission, explicit acks, bounded redeliveries,
// a bounded size that refuses new jobs when full) and a key-value bucket of
// submission records (state, then the result) with a TTL.
//
// Open sets the stream, bucket and consumer up (the API side); Bind finds them (the
// worker side). Queue.Submit records and enqueues jobs; Queue.Get and Queue.Watch read
// the records. A Worker fetches jobs, runs them on a sandbox backend, writes the
// result, sends the callback, and acks. StartServer runs a NATS server with JetStream
// in this process: the embedded default of `runbox serve`, or a cluster node.
//
// Delivery: a job is acked only after its result is written, so a worker that dies
// loses nothing: the job comes back after the ack wait. A redelivered job whose record
// is done is acked without running; one whose record says another attempt started it
// is not run again (its program may have run) but finished as sandbox_error, unless
// the submission is idempotent. Every record update is a compare-and-set on the
// record's revision, so a submission gets exactly one result even when two workers
// hold the same job.
package queue
