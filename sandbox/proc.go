package sandbox

import (
	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/proc"
)

// Captured fills r's output from a run of proc whose output caps were lim's, and
// returns what proc saw: how the process ended, and the limit proc stopped it for (the
// wall time, or the stream that went past its cap). A backend whose process is a
// supervisor (the native init) replaces the exit with the program's own.
func Captured(r *Result, pres *proc.Result, lim Limits) Facts {
	r.Stdout, r.Stderr = string(pres.Stdout), string(pres.Stderr)
	r.StdoutBytes, r.StderrBytes = pres.StdoutBytes, pres.StderrBytes
	r.StdoutTruncated, r.StderrTruncated = pres.StdoutBytes > lim.Stdout, pres.StderrBytes > lim.Stderr
	f := Facts{Exited: pres.Signal == 0, ExitCode: pres.ExitCode, Signal: pres.Signal}
	switch pres.Status {
	case proc.StatusTimeout, proc.StatusCanceled:
		f.Limit = api.LimitWall
	case proc.StatusOutputLimit:
		f.Limit = api.LimitStdout
		if r.StderrTruncated && !r.StdoutTruncated {
			f.Limit = api.LimitStderr
		}
	}
	return f
}
