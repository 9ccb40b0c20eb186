// Package runner holds the run logic that the command line and the server share:
//
//   - Watch: one command run through proc, its output turned into api events (lines,
//     progress readings, forwarded signals) as it arrives, logged, and captured for the
//     result.
//   - RunJobs: many commands (runbox map), N at once, in order or as they finish.
//   - Tasks: many sandbox specs (runbox run) on a backend, N at once, with an
//     application log and every output line logged.
//
// Rendering is the caller's business.
package runner
