package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/proc"
)

// ExecOptions are the settings of `runbox exec`.
type ExecOptions struct {
	IO *iostreams.IOStreams

	Argv         []string
	Timeout      time.Duration
	KillAfter    time.Duration
	Signal       string
	Input        string // file name, "-" for our stdin, "" for none
	CaptureLimit string // a size such as 10MiB
	JSON         bool
	Containment  string
}

// NewExecCmd returns `runbox exec`. runF replaces the run for tests; nil runs it.
func NewExecCmd(ios *iostreams.IOStreams, runF func(context.Context, *ExecOptions) error) *cobra.Command {
	opts := &ExecOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "exec [flags] -- CMD [ARGS...]",
		Short: "Run a command with a hard timeout over its whole process tree",
		Long: `Run CMD with a hard timeout. On timeout or interrupt the whole process tree gets
--signal, then SIGKILL after --kill-after; a daemon that escapes the process group is
killed too where a cgroup can be used. Output pipes held open by anything left are
drained for at most 2s, so runbox never hangs on them.

Without --json the command's stdout and stderr pass straight through. With --json one
JSON object describing the run is printed on stdout; output that is not valid UTF-8 is
given in base64 with "stdout_encoding": "base64" (likewise stderr).

Exit codes: the command's own; 128+N when signal N ended it; 124 on timeout; 125 when
runbox failed or was called wrongly (bad flag, missing command); 126 when CMD cannot be
executed; 127 when CMD is not found.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("exec: missing command (usage: runbox exec [flags] -- CMD [ARGS...])")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Argv = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runExec(cmd.Context(), opts)
		},
	}
	cmd.Flags().SetInterspersed(false)
	f := cmd.Flags()
	f.DurationVar(&opts.Timeout, "timeout", 0, "stop the command after this long (0: no timeout)")
	f.DurationVar(&opts.KillAfter, "kill-after", proc.DefaultGrace, "wait this long after --signal before SIGKILL")
	f.StringVar(&opts.Signal, "signal", "TERM", "signal sent first on timeout or interrupt")
	f.StringVar(&opts.Input, "input", "", "feed stdin from `FILE`, or from runbox's stdin with '-' (default: none)")
	f.StringVar(&opts.CaptureLimit, "capture-limit", units.BytesSize(proc.DefaultCaptureLimit), "with --json: bytes kept per stream (head and tail)")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object describing the run")
	f.StringVar(&opts.Containment, "containment", "auto", "how to hold the process tree: auto, cgroup, process-group or none")
	return cmd
}

func (o *ExecOptions) command() (*proc.Cmd, error) {
	sig, err := proc.ParseSignal(o.Signal)
	if err != nil {
		return nil, usagef("--signal: %v", err)
	}
	if o.Timeout < 0 {
		return nil, usagef("--timeout must not be negative")
	}
	if o.KillAfter < 0 {
		return nil, usagef("--kill-after must not be negative")
	}
	limit, err := units.RAMInBytes(o.CaptureLimit)
	if err != nil || limit <= 0 {
		return nil, usagef("--capture-limit: want a positive size such as 10MiB, got %q", o.CaptureLimit)
	}
	c := proc.Command(o.Argv[0], o.Argv[1:]...)
	c.Timeout = o.Timeout
	c.StopSignal = sig
	c.Grace = o.KillAfter
	if o.KillAfter == 0 {
		c.Grace = -1
	}
	switch o.Containment {
	case "auto", "":
		c.Containment = proc.ContainAuto
	case "cgroup":
		c.Containment = proc.ContainCgroup
	case "process-group":
		c.Containment = proc.ContainProcessGroup
	case "none":
		c.Containment = proc.ContainNone
	default:
		return nil, usagef("--containment: want auto, cgroup, process-group or none, got %q", o.Containment)
	}
	switch o.Input {
	case "":
	case "-":
		if o.IO.InFile != nil {
			c.Stdin = o.IO.InFile
		} else {
			c.Stdin = o.IO.In
		}
	default:
		c.Stdin = proc.FromFile(o.Input)
	}
	if o.JSON {
		c.Stdout = []proc.Sink{proc.Capture(limit)}
		c.Stderr = []proc.Sink{proc.Capture(limit)}
	} else {
		c.Stdout = []proc.Sink{passThrough(o.IO.OutFile, o.IO.Out)}
		c.Stderr = []proc.Sink{passThrough(o.IO.ErrFile, o.IO.ErrOut)}
	}
	return c, nil
}

// passThrough hands the child our own stream when it is a file, so the child writes
// to it directly (and sees a terminal if it is one).
func passThrough(f interface{ Fd() uintptr }, w io.Writer) proc.Sink {
	if f != nil && f == any(w) {
		return proc.Parent()
	}
	return proc.Writer(w)
}

func runExec(ctx context.Context, o *ExecOptions) error {
	c, err := o.command()
	if err != nil {
		return err
	}
	res, err := c.Run(ctx)
	if o.JSON {
		w := res.Wire()
		if err != nil {
			w.Error = err.Error()
		}
		enc := json.NewEncoder(o.IO.Out)
		enc.SetEscapeHTML(false)
		if jerr := enc.Encode(w); jerr != nil {
			return jerr
		}
	}
	return execExit(res, err, !o.JSON)
}

// execExit maps a run to runbox's exit code, as GNU timeout does.
func execExit(res *proc.Result, err error, say bool) error {
	msg := func(s string) string {
		if say {
			return s
		}
		return ""
	}
	if se, ok := errors.AsType[*proc.StartError](err); ok {
		switch {
		case errors.Is(se, proc.ErrNotFound):
			return &exitError{code: ExitNotFound, msg: msg(se.Error())}
		case errors.Is(se, proc.ErrPermission), errors.Is(se, proc.ErrExecFormat):
			return &exitError{code: ExitNotRunnable, msg: msg(se.Error())}
		}
		return &exitError{code: ExitInternal, msg: msg(se.Error())}
	}
	if err != nil {
		return &exitError{code: ExitInternal, msg: msg(err.Error())}
	}
	switch {
	case res.Status == proc.StatusTimeout:
		return &exitError{code: ExitTimeout, msg: msg(fmt.Sprintf("timed out after %s", res.Duration.Round(time.Millisecond)))}
	case res.Signal != 0:
		return &exitError{code: exitSignalOffset + int(res.Signal)}
	case res.ExitCode != 0:
		return &exitError{code: res.ExitCode}
	}
	return nil
}
