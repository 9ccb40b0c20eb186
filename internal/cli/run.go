package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/internal/logfile"
	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/runner"
	"github.com/runboxhq/runbox/sandbox"
)

// Exit codes of `runbox run`.
const (
	runExitFailed = 1 // a script did not end ok
	runExitUsage  = 2 // bad flags or paths
)

const (
	// maxScriptSize bounds a script file (the sandbox's input limit).
	maxScriptSize = sandbox.MaxFilesBytes
	// logKeep is how long rotated logs are kept.
	logKeep = 14 * 24 * time.Hour
)

// RunOptions are the settings of `runbox run`.
type RunOptions struct {
	IO *iostreams.IOStreams

	Paths       []string
	Backend     string
	Jobs        int
	Recursive   bool
	Timeout     time.Duration
	Memory      string
	Pids        int
	OutputLimit string
	Network     string
	Logs        string
	JSON        bool
	Lang        string
	Code        string
	Stdin       string
	backendFlags

	// Now is the clock of the logs' daily rotation (tests inject one); nil is time.Now.
	Now func() time.Time
}

// NewRunCmd returns `runbox run`. runF replaces the run for tests; nil runs it.
func NewRunCmd(ios *iostreams.IOStreams, runF func(context.Context, *RunOptions) error) *cobra.Command {
	opts := &RunOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "run [flags] PATH... | run --lang L -c CODE",
		Short: "Run code files and script directories in sandboxes",
		Long: `Run each script in a sandbox of its own and give a verdict per script: ok,
syntax_error, runtime_error, timeout, oom, output_limit, signaled or sandbox_error, with
the line of a syntax or runtime error.

PATHs are files or directories; a directory's scripts run in name order (its
subdirectories too with -r). The language comes from the extension (` + "`.py`" + `, ` + "`.js`" + `,
` + "`.mjs`" + `, ` + "`.cjs`" + `, ` + "`.sh`" + `); other files in a directory are skipped with a note.
Scripts run one after another, or -j at once.

Every script's output lines and the application log (JSON) go to files under --logs,
rotated every day and kept for two weeks. --json prints one JSON result per script (the
sandbox result, with "file") and a summary line.

Exit code: 0 when every script ended ok, 1 when any did not, 2 for bad flags or paths.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return runUsage("%v", err) })
	f := cmd.Flags()
	f.IntVarP(&opts.Jobs, "jobs", "j", 1, "scripts run at once")
	f.BoolVarP(&opts.Recursive, "recursive", "r", false, "run the scripts of subdirectories too")
	f.DurationVar(&opts.Timeout, "timeout", 0, "wall time limit per script (default 10s)")
	f.StringVar(&opts.Memory, "memory", "", "memory limit per script, such as 256MiB")
	f.IntVar(&opts.Pids, "pids", 0, "processes and threads per script (default 64)")
	f.StringVar(&opts.OutputLimit, "output-limit", "", "bytes of stdout and of stderr kept per script, such as 1MiB")
	f.StringVar(&opts.Network, "network", "none", "none or loopback")
	f.StringVar(&opts.Logs, "logs", "logs", "directory of the logs")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON result per script, then a summary")
	f.StringVar(&opts.Lang, "lang", "", "the language of -c")
	f.StringVarP(&opts.Code, "code", "c", "", "run this code (with --lang) instead of files")
	f.StringVar(&opts.Stdin, "stdin", "", "a file every script reads as its standard input")
	opts.backendFlags.add(f)
	return cmd
}

// runUsage is a wrong invocation of `runbox run`: exit code 2.
func runUsage(format string, a ...any) error {
	return &exitError{code: runExitUsage, msg: "run: " + fmt.Sprintf(format, a...)}
}

func runRun(ctx context.Context, opts *RunOptions) error {
	limits, err := opts.limits()
	if err != nil {
		return err
	}
	dockerCfg, err := opts.dockerConfig()
	if err != nil {
		return runUsage("%v", err)
	}
	if opts.Jobs < 1 {
		return runUsage("-j %d: want at least 1", opts.Jobs)
	}
	var stdin []byte
	if opts.Stdin != "" {
		if stdin, err = os.ReadFile(opts.Stdin); err != nil {
			return runUsage("--stdin: %v", err)
		}
	}
	tasks, notes, err := opts.tasks(limits, stdin)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(opts.IO.ErrOut, "runbox: "+n)
	}
	if len(tasks) == 0 {
		return runUsage("no script to run in %s", strings.Join(opts.Paths, " "))
	}

	appLog, lines, closeLogs, err := opts.openLogs()
	if err != nil {
		return &exitError{code: runExitUsage, msg: "run: " + err.Error()}
	}
	defer closeLogs()

	opts.jobs = min(opts.Jobs, len(tasks))
	backend, err := opts.openBackend(ctx, dockerCfg)
	if err != nil {
		if errors.Is(err, sandbox.ErrUnknownBackend) {
			return runUsage("--backend %s: %v", opts.Backend, err)
		}
		return &exitError{code: runExitFailed, msg: "run: " + err.Error()}
	}
	defer backend.Close()

	// Ctrl-C stops the scripts (they report timeout) and the summary still prints.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := &runPrinter{io: opts.IO, json: opts.JSON, showOutput: len(tasks) == 1}
	if !opts.JSON && opts.IO.IsTerminal() {
		out.live = mpb.New(mpb.WithOutput(opts.IO.ErrOut), mpb.WithWidth(1), mpb.WithRefreshRate(barRefresh))
		out.bars = make(map[int]*mpb.Bar)
	}
	ts := &runner.Tasks{Backend: backend, Parallel: opts.Jobs, Log: appLog, Lines: lines,
		Started: out.started, Finished: out.finished}
	results := ts.Run(ctx, tasks)
	if out.live != nil {
		out.live.Wait()
	}
	out.summary(results)
	for _, r := range results {
		if r.Failed() {
			return &exitError{code: runExitFailed}
		}
	}
	return nil
}

func (opts *RunOptions) limits() (sandbox.Limits, error) {
	l := sandbox.Limits{WallTime: opts.Timeout, Processes: opts.Pids, Network: opts.Network}
	if opts.Timeout < 0 {
		return l, runUsage("--timeout %v: want a positive duration", opts.Timeout)
	}
	if opts.Memory != "" {
		n, err := units.RAMInBytes(opts.Memory)
		if err != nil || n <= 0 {
			return l, runUsage("--memory %q: want a size such as 256MiB", opts.Memory)
		}
		l.Memory = n
	}
	if opts.OutputLimit != "" {
		n, err := units.RAMInBytes(opts.OutputLimit)
		if err != nil || n <= 0 {
			return l, runUsage("--output-limit %q: want a size such as 1MiB", opts.OutputLimit)
		}
		l.Stdout, l.Stderr = n, n
	}
	if err := sandbox.ValidateLimits(sandbox.WithDefaults(l)); err != nil {
		return l, runUsage("%v", strings.TrimPrefix(err.Error(), sandbox.ErrInvalidSpec.Error()+": "))
	}
	return l, nil
}

// tasks turns the paths (or -c) into tasks, with notes about skipped files.
func (opts *RunOptions) tasks(limits sandbox.Limits, stdin []byte) ([]runner.Task, []string, error) {
	if opts.Code != "" || opts.Lang != "" {
		if opts.Code == "" || opts.Lang == "" || len(opts.Paths) > 0 {
			return nil, nil, runUsage("-c needs --lang, and no paths")
		}
		l, ok := lang.Lookup(opts.Lang)
		if !ok {
			return nil, nil, runUsage("--lang %s: unknown (known: %s)", opts.Lang, strings.Join(sandbox.Languages(), ", "))
		}
		return []runner.Task{{Name: "-c", Spec: sandbox.Spec{Language: l.Name, Code: opts.Code, Stdin: stdin, Limits: limits}}}, nil, nil
	}
	if len(opts.Paths) == 0 {
		return nil, nil, runUsage("no PATH given (usage: runbox run [flags] PATH...)")
	}
	var tasks []runner.Task
	var notes []string
	for _, p := range opts.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, runUsage("%v", err)
		}
		if !fi.IsDir() {
			l, ok := lang.ForFile(p)
			if !ok {
				return nil, nil, runUsage("%s: unknown extension (supported: %s)", p, strings.Join(extensions(), " "))
			}
			tasks = append(tasks, scriptTask(p, l, limits, stdin))
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			switch {
			case err != nil:
				tasks = append(tasks, runner.Task{Name: path, Err: err})
				return nil
			case d.IsDir():
				if path != p && !opts.Recursive {
					return filepath.SkipDir
				}
				return nil
			}
			if l, ok := lang.ForFile(path); ok {
				tasks = append(tasks, scriptTask(path, l, limits, stdin))
			} else {
				notes = append(notes, fmt.Sprintf("skipped %s: not a script (%s)", path, strings.Join(extensions(), " ")))
			}
			return nil
		})
		if err != nil {
			return nil, nil, runUsage("%v", err)
		}
	}
	return tasks, notes, nil
}

// scriptTask reads a script: an empty, binary, oversized or unreadable file becomes a
// task that reports why it cannot run.
func scriptTask(path string, l *lang.Language, limits sandbox.Limits, stdin []byte) runner.Task {
	t := runner.Task{Name: path}
	f, err := os.Open(path)
	if err != nil {
		t.Err = err
		return t
	}
	defer f.Close()
	code, err := io.ReadAll(io.LimitReader(f, maxScriptSize+1))
	switch {
	case err != nil:
		t.Err = err
	case len(code) > maxScriptSize:
		t.Err = fmt.Errorf("larger than %s", units.BytesSize(maxScriptSize))
	case len(bytes.TrimSpace(code)) == 0:
		t.Err = errors.New("empty file")
	case bytes.IndexByte(code, 0) >= 0 || !utf8.Valid(code):
		t.Err = errors.New("binary file (NUL bytes or invalid UTF-8), not a script")
	}
	if t.Err == nil {
		t.Spec = sandbox.Spec{Language: l.Name, Code: string(code), CodeFile: filepath.Base(path), Stdin: stdin, Limits: limits}
	}
	return t
}

func extensions() []string {
	var exts []string
	for _, l := range lang.All() {
		exts = append(exts, l.Extensions...)
	}
	return exts
}

// openLogs opens the application log (JSON records) and the scripts' lines, both rotated
// daily and kept for logKeep.
func (opts *RunOptions) openLogs() (*slog.Logger, runner.LineLogger, func(), error) {
	open := func(name string) (*logfile.Writer, error) {
		return logfile.Open(logfile.Options{Path: filepath.Join(opts.Logs, name), Daily: true, MaxAge: logKeep, Now: opts.Now})
	}
	app, err := open("runbox.log")
	if err != nil {
		return nil, nil, nil, err
	}
	lines, err := open("scripts.log")
	if err != nil {
		app.Close()
		return nil, nil, nil, err
	}
	log := slog.New(slog.NewJSONHandler(app, nil))
	return log, lines, func() { lines.Close(); app.Close() }, nil
}

// runPrinter shows the results: a line per script as it finishes and a summary, or
// JSON.
type runPrinter struct {
	io   *iostreams.IOStreams
	json bool
	// showOutput passes a lone script's output through before its verdict; the
	// output of many goes to the logs (and --json) only.
	showOutput bool
	// On a terminal, one live line (a spinner and the time so far) per running
	// script; verdicts are printed above them.
	live *mpb.Progress
	bars map[int]*mpb.Bar
}

func (p *runPrinter) started(i int, t runner.Task) {
	if p.live == nil {
		return
	}
	p.bars[i] = p.live.New(0, mpb.SpinnerStyle(),
		mpb.PrependDecorators(decor.Name(t.Name+" ", decor.WC{C: decor.DindentRight})),
		mpb.AppendDecorators(decor.Name(" running "), decor.Elapsed(decor.ET_STYLE_GO)),
		mpb.BarRemoveOnComplete())
}

func (p *runPrinter) finished(r runner.TaskResult) {
	if p.json {
		b, err := taskJSON(r)
		if err != nil {
			fmt.Fprintf(p.io.ErrOut, "runbox: %s: %v\n", r.Name, err)
			return
		}
		p.io.Out.Write(append(b, '\n'))
		return
	}
	out, errOut := p.io.Out, p.io.ErrOut
	if p.live != nil {
		out, errOut = p.live, p.live // above the live lines
		if bar := p.bars[r.Index]; bar != nil {
			bar.Abort(true)
			delete(p.bars, r.Index)
		}
	}
	if r.Err != nil {
		fmt.Fprintf(out, "%-13s %s: %v\n", "error", r.Name, r.Err)
		return
	}
	if p.showOutput {
		io.WriteString(out, r.Result.Stdout)
		io.WriteString(errOut, r.Result.Stderr)
	}
	fmt.Fprintf(out, "%-13s %s (%s)\n", r.Result.Status, r.Name, r.Result.WallTime.Round(time.Millisecond))
}

// taskJSON is the sandbox result with the file, or the file and the error that kept it
// from running.
func taskJSON(r runner.TaskResult) ([]byte, error) {
	if r.Result == nil {
		return json.Marshal(map[string]string{"file": r.Name, "error": r.Err.Error()})
	}
	b, err := json.Marshal(r.Result)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["file"], _ = json.Marshal(r.Name)
	return json.Marshal(m)
}

func (p *runPrinter) summary(results []runner.TaskResult) {
	counts := map[string]int{}
	failed := 0
	for _, r := range results {
		status := "error"
		if r.Result != nil {
			status = string(r.Result.Status)
		}
		counts[status]++
		if r.Failed() {
			failed++
		}
	}
	if p.json {
		b, _ := json.Marshal(map[string]any{"summary": map[string]any{"scripts": len(results), "failed": failed, "statuses": counts}})
		p.io.Out.Write(append(b, '\n'))
		return
	}
	fmt.Fprintln(p.io.Out)
	tw := tabwriter.NewWriter(p.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCRIPT\tLANGUAGE\tSTATUS\tEXIT\tWALL\tMEMORY")
	for _, r := range results {
		if r.Result == nil {
			fmt.Fprintf(tw, "%s\t-\terror\t-\t-\t-\n", r.Name)
			continue
		}
		res := r.Result
		exit := res.Signal
		if res.ExitCode != nil {
			exit = fmt.Sprint(*res.ExitCode)
		}
		if exit == "" {
			exit = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, res.Language, res.Status, exit,
			res.WallTime.Round(time.Millisecond), units.BytesSize(float64(res.PeakMemory)))
	}
	tw.Flush()
	var lines []string
	for _, r := range results {
		if msg := failureLine(r); msg != "" {
			lines = append(lines, msg)
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(p.io.Out)
		for _, l := range lines {
			fmt.Fprintln(p.io.Out, l)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(p.io.Out, "\n%d scripts: %s\n", len(results), strings.Join(parts, ", "))
}

// failureLine says what went wrong with a script, in the form compilers use:
// "scripts/b.py:3: SyntaxError: '(' was never closed".
func failureLine(r runner.TaskResult) string {
	if r.Err != nil {
		return fmt.Sprintf("%s: %v", r.Name, r.Err)
	}
	res := r.Result
	switch res.Status {
	case sandbox.StatusOK:
		return ""
	case sandbox.StatusSandboxError:
		return fmt.Sprintf("%s: sandbox error: %s", r.Name, res.Error)
	case sandbox.StatusTimeout:
		return fmt.Sprintf("%s: timed out (%s time limit %v)", r.Name, res.Limit, res.Limits.WallTime)
	case sandbox.StatusOutputLimit:
		return fmt.Sprintf("%s: output limit: %s exceeded %s", r.Name, res.Limit, units.BytesSize(float64(res.Limits.Stdout)))
	case sandbox.StatusSignaled:
		return fmt.Sprintf("%s: killed by %s", r.Name, res.Signal)
	}
	d := res.Diagnostic
	if d == nil {
		if res.ExitCode != nil {
			return fmt.Sprintf("%s: exited with status %d", r.Name, *res.ExitCode)
		}
		return fmt.Sprintf("%s: %s", r.Name, res.Status)
	}
	where := r.Name
	if d.File != "" && d.File != filepath.Base(r.Name) {
		where = filepath.Join(filepath.Dir(r.Name), d.File)
	}
	if d.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, d.Line)
	}
	msg := fmt.Sprintf("%s: %s: %s", where, d.Type, firstLine(d.Message))
	if d.Hint != "" {
		msg += " (" + d.Hint + ")"
	}
	return msg
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
