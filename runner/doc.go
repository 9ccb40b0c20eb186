// Package runner holds the run logic that the command line and the server share. For
// now that is Watch: one command run through proc, its output turned into api events
// (lines, progress readings, forwarded signals) as it arrives, logged, and captured for
// the result. Rendering the events is the caller's business.
package runner
