package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/runner"
)

// maxFailedExit caps the exit code that counts failed jobs.
const maxFailedExit = 100

// MapOptions are the settings of `runbox map`.
type MapOptions struct {
	IO *iostreams.IOStreams

	Template    []string
	Args        []string // nil: one per stdin line
	Jobs        int
	KeepOrder   bool
	Timeout     time.Duration
	HaltOnError bool
	JSON        bool
}

// NewMapCmd returns `runbox map`. runF replaces the run for tests; nil runs it.
func NewMapCmd(ios *iostreams.IOStreams, runF func(context.Context, *MapOptions) error) *cobra.Command {
	opts := &MapOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "map [flags] CMD-TEMPLATE... [::: ARGS...]",
		Short: "Run a command over many inputs in parallel",
		Long: `Run CMD-TEMPLATE once per argument, -j at a time, GNU parallel style. The arguments
follow ":::"; without ":::" they are read from stdin, one per line.

Placeholders: {} the argument, {.} without its extension, {/} its base name, {//} its
directory, {/.} the base name without extension, {#} the job number. A template without
placeholders gets the argument appended. The command runs directly, not through a
shell (use sh -c '...' for pipes).

Each job's output is printed whole when it finishes (in job order with --keep-order),
never interleaved with another's. A progress bar is drawn on a terminal; a summary is
printed on stderr. --json prints one JSON object per job instead.

Exit code: 0 when every job succeeded, else the number of failed jobs (at most 100);
125 when runbox itself failed or was called wrongly.`,
		Example: `  runbox map -j 2 gzip -k {} ::: data/*.log
  ls *.png | runbox map convert {} {.}.jpg`,
		RunE: func(cmd *cobra.Command, args []string) error {
			i := slices.Index(args, ":::")
			if i >= 0 {
				opts.Template, opts.Args = args[:i], args[i+1:]
				if opts.Args == nil {
					opts.Args = []string{}
				}
			} else {
				opts.Template = args
			}
			if len(opts.Template) == 0 {
				return usagef("map: missing command template (usage: runbox map [flags] CMD-TEMPLATE... ::: ARGS...)")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runMap(cmd.Context(), opts)
		},
	}
	cmd.Flags().SetInterspersed(false)
	f := cmd.Flags()
	f.IntVarP(&opts.Jobs, "jobs", "j", runtime.NumCPU(), "jobs at once")
	f.BoolVarP(&opts.KeepOrder, "keep-order", "k", false, "print results in argument order")
	f.DurationVar(&opts.Timeout, "timeout", 0, "stop a job after this long (its whole tree)")
	f.BoolVar(&opts.HaltOnError, "halt-on-error", false, "start no new job after the first failure")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object per job")
	return cmd
}

func runMap(ctx context.Context, o *MapOptions) error {
	if o.Jobs < 1 {
		return usagef("--jobs must be at least 1")
	}
	if o.Timeout < 0 {
		return usagef("--timeout must not be negative")
	}
	args := o.Args
	if args == nil {
		sc := bufio.NewScanner(o.IO.In)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := strings.TrimSuffix(sc.Text(), "\r"); line != "" {
				args = append(args, line)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("map: reading arguments from stdin: %w", err)
		}
	}
	jobs := make([]runner.Job, len(args))
	for i, a := range args {
		argv := runner.Expand(o.Template, a, i+1)
		c := proc.Command(argv[0], argv[1:]...)
		c.Timeout = o.Timeout
		c.Stdout = []proc.Sink{proc.Capture(0)}
		c.Stderr = []proc.Sink{proc.Capture(0)}
		jobs[i] = runner.Job{Seq: i + 1, Arg: a, Cmd: c}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	var bar *mpb.Bar
	var prog *mpb.Progress
	if !o.JSON && o.IO.IsStderrTerminal() {
		prog = mpb.New(mpb.WithOutput(o.IO.ErrOut), mpb.WithWidth(64), mpb.WithRefreshRate(barRefresh))
		bar = prog.AddBar(int64(len(jobs)),
			mpb.PrependDecorators(decor.Name("map "), decor.CountersNoUnit("%d/%d", decor.WC{W: 12})),
			mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5}), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)))
	}
	var failed, ran atomic.Int64
	start := time.Now()
	enc := json.NewEncoder(o.IO.Out)
	enc.SetEscapeHTML(false)
	runner.RunJobs(ctx, jobs, o.Jobs, o.KeepOrder, o.HaltOnError, func(r runner.JobResult) {
		ran.Add(1)
		if r.Failed() {
			failed.Add(1)
		}
		if o.JSON {
			w := struct {
				Seq int    `json:"seq"`
				Arg string `json:"arg"`
				*jsonResult
			}{r.Seq, r.Arg, wireJob(r)}
			_ = enc.Encode(w)
		} else {
			printJob(o.IO, prog, r)
		}
		if bar != nil {
			bar.Increment()
		}
	})
	if bar != nil {
		bar.SetTotal(-1, true)
		prog.Wait()
	}
	n, bad := ran.Load(), failed.Load()
	if !o.JSON {
		fmt.Fprintf(o.IO.ErrOut, "map: %d jobs, %d ok, %d failed", n, n-bad, bad)
		if skipped := int64(len(jobs)) - n; skipped > 0 {
			fmt.Fprintf(o.IO.ErrOut, ", %d not run", skipped)
		}
		fmt.Fprintf(o.IO.ErrOut, " in %s\n", time.Since(start).Round(time.Millisecond))
	}
	if bad > 0 {
		return &exitError{code: int(min(bad, maxFailedExit))}
	}
	if ctx.Err() != nil {
		return &exitError{code: ExitInterrupted, msg: "interrupted"}
	}
	return nil
}

type jsonResult = struct {
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

func wireJob(r runner.JobResult) *jsonResult {
	if r.Err != nil {
		return &jsonResult{Error: r.Err.Error()}
	}
	w := r.Result.Wire()
	return &jsonResult{Result: w}
}

// printJob writes one finished job's output whole: its stdout to ours, its stderr to
// ours, then a line saying how a failed job ended.
func printJob(ios *iostreams.IOStreams, prog *mpb.Progress, r runner.JobResult) {
	errOut := ios.ErrOut
	if prog != nil {
		errOut = prog // lines above the bar
	}
	if r.Err != nil {
		fmt.Fprintf(errOut, "map: job %d (%s): %v\n", r.Seq, r.Arg, r.Err)
		return
	}
	ios.Out.Write(r.Result.Stdout)
	if len(r.Result.Stderr) > 0 {
		errOut.Write(r.Result.Stderr)
	}
	if !r.Result.Success() {
		fmt.Fprintf(errOut, "map: job %d (%s): %v\n", r.Seq, r.Arg, r.Result.Err())
	}
}
