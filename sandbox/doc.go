// Package sandbox runs untrusted code with limits, behind one small interface.
//
// A [Spec] says what to run (a command, or a language and its code), with which input
// files, stdin, environment and [Limits]. A [Backend] runs it in isolation and returns a
// [Result] whose [Status] is one of ok, runtime_error, syntax_error, timeout, oom,
// output_limit, signaled and sandbox_error. The first seven describe what the program
// did; sandbox_error means runbox failed to run it and is never the program's fault.
//
// Backends live in subpackages and register themselves by name (see [Register]):
// sandbox/native isolates with Linux namespaces, cgroups, seccomp and Landlock;
// sandbox/docker goes through the Docker Engine API. Every backend passes the same
// conformance suite, sandbox/sandboxtest.
//
// Backends share the work that does not depend on isolation: [Prepare] validates a spec,
// fills in default limits and turns a language and its code into a command and a file;
// [Finish] turns what the program did into the verdict, with a [Diagnostic] for syntax
// and runtime errors.
package sandbox
