// Package proc runs child processes: what Python's subprocess.run, Popen.communicate and
// asyncio's wait_for offer, plus what os/exec leaves every caller to write by hand.
//
// # Running
//
// [Run] and [Cmd.Run] start a command and wait for it, returning a [Result]: exit code
// or signal (never both), a [Status], timings, CPU and memory use, and the captured
// output. "The program failed" is a Result; an error means we could not start it
// ([StartError], with sentinels such as [ErrNotFound]) or a sink failed. With
// [Cmd.Check], a failed run also returns an [ExitError] quoting the head and tail of
// stderr. [Cmd.Start] returns a live [Process] instead.
//
// # Input and output
//
// Stdin comes from nil (/dev/null), [Bytes], [String], any [io.Reader], [FromFile] or an
// [*os.File] handed to the child as is. Each output stream goes to any number of [Sink]s
// at once: [Capture] (bounded: head and tail kept, truncation reported), [Writer],
// [ToFile], [AppendFile], [File] (an open file or pipe of the caller's), [Discard],
// [Parent] and [Lines] callbacks, which see CRLF lines, lone "\r" progress updates,
// over-long lines and a last line without newline. [Cmd.Combined] also keeps both
// streams interleaved in arrival order. A stream whose only sink is a file, the
// caller's open file, the parent's stream or discard goes straight to that file.
// Reading, feeding and capturing never deadlock, whatever the sizes, and a child that
// exits without reading its input is not an error.
//
// # Stopping
//
// On [Cmd.Timeout], the context's end, [Process.Stop] or [Cmd.OutputLimit], the whole
// tree gets [Cmd.StopSignal] (SIGTERM), then SIGKILL after [Cmd.Grace] (5 s). When the
// main process exits, what is left of its tree is killed (unless [Cmd.KeepOrphans]) and
// the pipes are drained for at most [Cmd.DrainTimeout] (2 s): a grandchild holding them
// never makes a call hang. The tree is a cgroup where this process can make one (v2
// with cgroup.kill, or the v1 freezer), so that setsid and double-forked daemons die
// too; otherwise a process group. [Result.Containment] says which. Children get SIGKILL
// if this program dies, even by SIGKILL.
//
// # Live processes
//
// A [Process] is safe for concurrent use: [Process.Status] takes a snapshot without
// blocking, [Process.Done] closes when the result is ready, [Process.Wait],
// [Process.Signal], [Process.SignalTree] and [Process.Stop]. With [Cmd.Interactive],
// [Process.Send] queues input without ever blocking, [Process.Recv] and
// [Process.RecvErr] return what output is there now, [Process.RecvFor] gathers output
// for a while, and the Process is an io.ReadWriteCloser that cannot deadlock.
//
// # Many at once
//
// Thousands of concurrent runs from goroutines are fine; a [Limiter] bounds how many
// children run at once. Exits are observed through pidfds, so signals never reach a
// reused pid.
//
// The package is Linux-only for now.
package proc
