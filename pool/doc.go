// Package pool runs tasks on a pool of persistent worker processes, like Python's
// multiprocessing.Pool but with processes that may be written in any language and a
// pool that never hangs: a task that times out kills and replaces its worker and fails
// alone; a worker that dies (SIGKILL, out of memory, crash) or speaks garbage fails its
// in-flight task with an error saying so, and is restarted with backoff; past a restart
// limit the pool reports itself broken instead of spinning.
//
// Workers speak the line protocol of docs/protocol.md: one JSON frame per line on stdout,
// logs on stderr. [ServeWorker] is the Go side; python/ and js/ hold the others.
package pool
