// Package jsonpipe calls a program as a function: one child process per call, the
// argument as JSON on its stdin, the result as JSON on its stdout. The child gets the
// isolation and hard limits of a process (package proc: a timeout kills its whole
// tree); the caller gets typed values and typed errors.
//
// The child side is three lines in Go ([Serve]), Python (python/jsonpipe.py) or
// JavaScript (js/jsonpipe.js). A child that fails writes {"error": "message"} (and
// optionally "type") as the last line of its stderr and exits non-zero; the caller gets
// a [*RemoteError] with that message.
package jsonpipe
