package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/internal/logfile"
	"github.com/runboxhq/runbox/internal/progress"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/runner"
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

	Quiet    bool   // no live view
	Raw      bool   // pass the child's bytes through untouched instead of the live view
	Events   bool   // NDJSON events on stdout
	Progress string // preset name or regexp
	Log      string // log file
	LogSize  string // rotate the log past this size too
	LogKeep  int    // rotated logs kept
}

// NewExecCmd returns `runbox exec`. runF replaces the run for tests; nil runs it.
func NewExecCmd(ios *iostreams.IOStreams, runF func(context.Context, *ExecOptions) error) *cobra.Command {
	opts := &ExecOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "exec [flags] -- CMD [ARGS...]",
		Short: "Run a command with a hard timeout over its whole process tree",
		Long: `Run CMD and watch it live. Every line it writes is shown as it arrives, with the
time and the stream, on stderr (a progress bar below the lines on a terminal, plain
lines otherwise), while the output is also captured for the result (--json) and
appended to --log. --raw passes the bytes through untouched instead; --quiet shows
nothing; --events writes the run as NDJSON events on stdout (docs/events.md).

--progress follows progress lines (a preset such as pg_basebackup, or a regexp with a
named group pct, or done and total); they drive the bar instead of being printed, and
stay in the capture and the log. The last reading is in the --json result.

On timeout the whole process tree gets --signal, then SIGKILL after --kill-after; a
daemon that escapes the process group is killed too where a cgroup can be used. Output
pipes held open by anything left are drained for at most 2s, so runbox never hangs.
Ctrl-C (SIGINT) is forwarded to the command's process group; a second one within
--kill-after kills the tree. SIGTERM and SIGHUP are forwarded too.

CMD does not get a terminal: its output is read through pipes. Programs that need a
terminal (editors, password prompts) are not supported.

With --json one JSON object describing the run is printed on stdout; output that is not
valid UTF-8 is given in base64 with "stdout_encoding": "base64" (likewise stderr).

Exit codes: the command's own; 128+N when signal N ended it; 130 when it was
interrupted (Ctrl-C); 124 on timeout; 125 when runbox failed or was called wrongly (bad
flag, missing command); 126 when CMD cannot be executed; 127 when CMD is not found.`,
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
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "do not show the output live")
	f.BoolVar(&opts.Raw, "raw", false, "pass the command's stdout and stderr through untouched, instead of the live view")
	f.BoolVar(&opts.Events, "events", false, "write NDJSON events (started, line, progress, signal, exited) on stdout; see docs/events.md")
	f.StringVar(&opts.Progress, "progress", "", "follow progress: a preset ("+strings.Join(progress.Presets(), ", ")+") or a regexp with a named group pct, or done and total")
	f.StringVar(&opts.Log, "log", "", "append every line, with time and stream, to `FILE`; rotated daily")
	f.StringVar(&opts.LogSize, "log-max-size", "", "also rotate the log past this size (such as 100MiB)")
	f.IntVar(&opts.LogKeep, "log-keep", 7, "rotated logs to keep (0: all)")
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
	c.Stdout, c.Stderr = []proc.Sink{}, []proc.Sink{}
	if o.Raw {
		c.Stdout = []proc.Sink{passThrough(o.IO.OutFile, o.IO.Out)}
		c.Stderr = []proc.Sink{passThrough(o.IO.ErrFile, o.IO.ErrOut)}
	}
	return c, nil
}

func (o *ExecOptions) check() error {
	if o.Raw && o.Events {
		return usagef("--raw and --events both want stdout; choose one")
	}
	if o.JSON && o.Events {
		return usagef("--json and --events both write stdout; --events already ends with the result")
	}
	if o.JSON && o.Raw {
		return usagef("--json and --raw both write stdout; choose one")
	}
	if o.LogKeep < 0 {
		return usagef("--log-keep must not be negative")
	}
	return nil
}

// pickRenderer chooses the live view: NDJSON events, nothing, a bar on a terminal,
// or plain lines on stderr.
func (o *ExecOptions) pickRenderer() renderer {
	switch {
	case o.Events:
		return newEventsRenderer(o.IO.Out)
	case o.Quiet || o.Raw:
		return quietRenderer{}
	case o.IO.IsStderrTerminal():
		return newBarRenderer(o.IO.ErrOut)
	}
	return newPlainRenderer(o.IO.ErrOut)
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
	if err := o.check(); err != nil {
		return err
	}
	c, err := o.command()
	if err != nil {
		return err
	}
	limit, _ := units.RAMInBytes(o.CaptureLimit)
	w := &runner.Watch{Cmd: c, CaptureLimit: limit}
	if o.Progress != "" {
		if w.Progress, err = progress.New(o.Progress); err != nil {
			return usagef("--progress: %v", err)
		}
	}
	if o.Log != "" {
		lw, err := o.openLog()
		if err != nil {
			return err
		}
		defer lw.Close()
		w.Log = lw
	}
	r := o.pickRenderer()
	w.Emit = r.event
	// The child leads its own process group, so the terminal's Ctrl-C reaches only us:
	// forward it (and TERM, HUP) to the tree; see runner.Watch.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	w.Signals = sigs

	wire, res, err := w.Run(ctx)
	r.close()
	if o.JSON {
		enc := json.NewEncoder(o.IO.Out)
		enc.SetEscapeHTML(false)
		if jerr := enc.Encode(wire); jerr != nil {
			return jerr
		}
	}
	if wire.Interrupted && err == nil {
		return &exitError{code: ExitInterrupted}
	}
	return execExit(res, err, !o.JSON && !o.Events)
}

func (o *ExecOptions) openLog() (*logfile.Writer, error) {
	opts := logfile.Options{Path: o.Log, Daily: true, MaxBackups: o.LogKeep}
	if o.LogSize != "" {
		n, err := units.RAMInBytes(o.LogSize)
		if err != nil || n <= 0 {
			return nil, usagef("--log-max-size: want a positive size such as 100MiB, got %q", o.LogSize)
		}
		opts.MaxSize = n
	}
	lw, err := logfile.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("--log: %w", err)
	}
	return lw, nil
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
