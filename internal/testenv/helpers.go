package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Exit codes of helpers.
const (
	exitFailed   = 1  // the helper could not do its job
	exitUsage    = 2  // unknown helper or bad arguments
	exitDeadline = 3  // EnvDeadline passed
	exitSurvived = 99 // crash is still alive after its own signal
)

const (
	// defaultChunk is the write size of flood.
	defaultChunk = 64 << 10
	// copyBuffer is the buffer size of cat.
	copyBuffer = 1 << 20
	// floodPattern repeats through everything flood writes.
	floodPattern = "0123456789abcdef"
	// progressBatch is the write size of progress-flood.
	progressBatch = 4 << 10
)

// line100 is the line that lines-100 repeats: 99 bytes and a newline.
var line100 = strings.Repeat("0123456789", 10)[:99] + "\n"

// Defaults of pg-basebackup: how many updates, and the pause between two.
const (
	pgUpdates = 20
	pgPause   = 20 * time.Millisecond
	// pgTotalKB is the size of the imitated backup, in kB.
	pgTotalKB = 1808798
)

// helpers is the registry: name → func(args) exit code. Bad arguments panic with
// badArgs (see usage), which runHelper turns into exit code 2, so that each helper
// stays a few lines long.
var helpers = map[string]func(args []string) int{
	"echo": func(args []string) int {
		return check(fmt.Fprintln(os.Stdout, strings.Join(args, " ")))
	},
	"echo-stderr": func(args []string) int {
		return check(fmt.Fprintln(os.Stderr, strings.Join(args, " ")))
	},
	"cat": func(args []string) int {
		nargs(args, 0, 0)
		// Hide ReadFrom/WriteTo so that cat does plain reads and writes of copyBuffer.
		_, err := io.CopyBuffer(struct{ io.Writer }{os.Stdout}, struct{ io.Reader }{os.Stdin}, make([]byte, copyBuffer))
		return check(0, err)
	},
	// alloc MiB: allocate and touch that much memory, then print "allocated".
	"alloc": func(args []string) int {
		nargs(args, 1, 1)
		mem := make([]byte, atoi(args[0])<<20)
		for i := 0; i < len(mem); i += 4096 {
			mem[i] = 1
		}
		return check(fmt.Println("allocated", len(mem)>>20))
	},
	// children N: start N sleeping children, print how many started and the first
	// error, then kill them.
	"children": func(args []string) int {
		nargs(args, 1, 1)
		var started []*os.Process
		var firstErr error
		for range atoi(args[0]) {
			p, err := os.StartProcess("/bin/sleep", []string{"sleep", "60"}, &os.ProcAttr{})
			if err != nil {
				firstErr = err
				break
			}
			started = append(started, p)
		}
		fmt.Println("started", len(started), firstErr)
		for _, p := range started {
			_ = p.Kill()
			_, _ = p.Wait()
		}
		return 0
	},
	"hang": func(args []string) int {
		nargs(args, 0, 0)
		return hang()
	},
	"ignore-term": func(args []string) int {
		nargs(args, 0, 0)
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		if code := check(os.Stdout.WriteString("ready\n")); code != 0 {
			return code
		}
		return hang()
	},
	"flood": func(args []string) int {
		nargs(args, 1, 3)
		n, stream, chunk := count(args[0]), "stdout", defaultChunk
		if len(args) > 1 {
			stream = args[1]
		}
		if len(args) > 2 {
			if chunk = count(args[2]); chunk == 0 {
				usage("CHUNK must be positive")
			}
		}
		var ws []io.Writer
		switch stream {
		case "stdout":
			ws = []io.Writer{os.Stdout}
		case "stderr":
			ws = []io.Writer{os.Stderr}
		case "both":
			ws = []io.Writer{os.Stdout, os.Stderr}
		default:
			usage("stream must be stdout, stderr or both, not %q", stream)
		}
		var fs []func() error
		for _, w := range ws {
			fs = append(fs, func() error { return flood(w, n, chunk) })
		}
		return check(0, concurrently(fs...))
	},
	"flood-lines": func(args []string) int {
		nargs(args, 1, 1)
		n := count(args[0])
		w := bufio.NewWriterSize(os.Stdout, defaultChunk)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "line %d\n", i)
		}
		return check(0, w.Flush())
	},
	"orphan-holds-pipe": func(args []string) int {
		nargs(args, 0, 0)
		cmd, err := spawn("hang", false, os.Stdout, os.Stderr)
		if err != nil {
			return check(0, err)
		}
		return check(fmt.Println(cmd.Process.Pid))
	},
	"setsid-escape": func(args []string) int {
		nargs(args, 0, 0)
		cmd, err := spawn("hang", true, os.Stdout, os.Stderr)
		if err != nil {
			return check(0, err)
		}
		if code := check(fmt.Println(cmd.Process.Pid)); code != 0 {
			return code
		}
		return hang()
	},
	"double-fork": func(args []string) int {
		nargs(args, 0, 0)
		mid, err := command("double-fork-mid")
		if err != nil {
			return check(0, err)
		}
		mid.Stderr = os.Stderr
		out, err := mid.Output()
		if err != nil {
			return check(0, fmt.Errorf("double-fork-mid: %w", err))
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			return check(0, fmt.Errorf("double-fork-mid printed %q", out))
		}
		return check(fmt.Println(pid))
	},
	// double-fork-mid is the middle process of double-fork: it starts a daemon that
	// holds none of the pipes, prints its pid and exits without waiting for it.
	"double-fork-mid": func(args []string) int {
		nargs(args, 0, 0)
		cmd, err := spawn("hang", true, nil, nil)
		if err != nil {
			return check(0, err)
		}
		return check(fmt.Println(cmd.Process.Pid))
	},
	"exit": func(args []string) int {
		nargs(args, 1, 1)
		return atoi(args[0])
	},
	"read-stdin-then-write": func(args []string) int {
		nargs(args, 0, 0)
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return check(0, err)
		}
		if code := check(os.Stdout.Write(b)); code != 0 {
			return code
		}
		return check(fmt.Fprintf(os.Stderr, "read %d bytes\n", len(b)))
	},
	"write-without-reading-stdin": func(args []string) int {
		nargs(args, 1, 1)
		return check(0, flood(os.Stdout, count(args[0]), defaultChunk))
	},
	"close-stdout-and-linger": func(args []string) int {
		nargs(args, 1, 1)
		d := duration(args[0])
		// The watchdog's timer has already created the runtime's epoll descriptors, so
		// nothing reuses fds 1 and 2 behind our back.
		unix.Close(1)
		unix.Close(2)
		time.Sleep(d)
		return 0
	},
	"crash": func(args []string) int {
		nargs(args, 1, 1)
		return crash(signalArg(args[0]))
	},
	"duplex": func(args []string) int {
		nargs(args, 1, 1)
		n := count(args[0])
		return check(0, concurrently(
			func() error { _, err := io.Copy(io.Discard, os.Stdin); return err },
			func() error { return flood(os.Stdout, n, defaultChunk) },
			func() error { return flood(os.Stderr, n, defaultChunk) },
		))
	},
	"sleep": func(args []string) int {
		nargs(args, 1, 1)
		time.Sleep(duration(args[0]))
		return 0
	},
	"print-pid-then-hang": func(args []string) int {
		nargs(args, 0, 0)
		if code := check(fmt.Println(os.Getpid())); code != 0 {
			return code
		}
		return hang()
	},
	"env": func(args []string) int {
		nargs(args, 0, 0)
		env := os.Environ()
		slices.Sort(env)
		return check(fmt.Print(strings.Join(append(env, ""), "\n")))
	},
	"pwd": func(args []string) int {
		nargs(args, 0, 0)
		dir, err := os.Getwd()
		if err != nil {
			return check(0, err)
		}
		return check(fmt.Println(dir))
	},
	"partial-then-hang": func(args []string) int {
		nargs(args, 1, 1)
		if code := check(os.Stdout.WriteString(args[0])); code != 0 {
			return code
		}
		return hang()
	},
	"lines-slowly": func(args []string) int {
		nargs(args, 2, 2)
		n, d := count(args[0]), duration(args[1])
		for i := 1; i <= n; i++ {
			if i > 1 {
				time.Sleep(d)
			}
			if code := check(fmt.Printf("tick %d\n", i)); code != 0 {
				return code
			}
		}
		return 0
	},
	"pg-basebackup": func(args []string) int {
		nargs(args, 0, 2)
		n, d := pgUpdates, pgPause
		if len(args) > 0 {
			n = count(args[0])
		}
		if len(args) > 1 {
			d = duration(args[1])
		}
		return check(0, pgBasebackup(os.Stderr, n, d))
	},
	"report-while-reading": func(args []string) int {
		nargs(args, 1, 1)
		total := count(args[0])
		if total == 0 {
			usage("TOTAL must be positive")
		}
		return check(0, reportWhileReading(os.Stdin, os.Stdout, os.Stderr, total))
	},
	"progress-flood": func(args []string) int {
		nargs(args, 1, 1)
		n := count(args[0])
		w := bufio.NewWriterSize(os.Stderr, progressBatch)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "\r(%d%%)", i*100/n)
		}
		w.WriteString("\n")
		return check(0, w.Flush())
	},
	"lines-100": func(args []string) int {
		nargs(args, 1, 1)
		return check(0, lines100(os.Stdout, count(args[0])))
	},
}

// pgBasebackup writes to w what pg_basebackup -v -P writes to a terminal: verbose
// lines, then n progress updates d apart, each ended by "\r", then "\n" and the
// closing verbose lines. Each update goes out in one write, "\r" included.
func pgBasebackup(w io.Writer, n int, d time.Duration) error {
	for _, l := range []string{
		"pg_basebackup: initiating base backup, waiting for checkpoint to complete",
		"pg_basebackup: checkpoint completed",
		"pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1",
		"pg_basebackup: starting background WAL receiver",
	} {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	total := strconv.Itoa(pgTotalKB)
	for i := 1; i <= n; i++ {
		if i > 1 {
			time.Sleep(d)
		}
		done := pgTotalKB * i / n
		// progress_report in pg_basebackup.c pads done to the width of the total.
		line := fmt.Sprintf("%*d/%s kB (%d%%), 0/1 tablespace (pgdata/base/1/%d)\r",
			len(total), done, total, done*100/pgTotalKB, i)
		if _, err := io.WriteString(w, line); err != nil {
			return err
		}
	}
	for _, l := range []string{
		"",
		"pg_basebackup: write-ahead log end point: 0/2000100",
		"pg_basebackup: waiting for background process to finish streaming ...",
		"pg_basebackup: syncing data to disk ...",
		"pg_basebackup: base backup completed",
	} {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// reportWhileReading echoes each line of in to out in upper case, and reports on
// progress "processed K lines (P%)" before each echo, P being K*100/total.
func reportWhileReading(in io.Reader, out, progress io.Writer, total int) error {
	r := bufio.NewReader(in)
	for k := 1; ; k++ {
		line, err := r.ReadString('\n')
		if line != "" {
			if _, err := fmt.Fprintf(progress, "processed %d lines (%d%%)\n", k, k*100/total); err != nil {
				return err
			}
			if _, err := io.WriteString(out, strings.ToUpper(line)); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// lines100 writes n bytes of Lines100Data to w in writes of defaultChunk bytes.
func lines100(w io.Writer, n int) error { return writePattern(w, line100, n, defaultChunk) }

// Lines100Data returns the first n bytes that lines-100 writes: lines of 99 bytes
// and a newline.
func Lines100Data(n int) []byte { return patternData(line100, n) }

// Run runs helper name with args, as [Main] does when [EnvHelper] is set, and returns
// its exit code, for a test binary that dispatches helpers itself (testscript's
// commands). The deadline of [EnvDeadline] applies, or 10 minutes without it.
func Run(name string, args []string) int {
	return runHelper(name, args)
}

// runHelper runs helper name with args under the deadline of EnvDeadline and returns
// its exit code.
func runHelper(name string, args []string) (code int) {
	h, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "testenv: unknown helper %q\n", name)
		return exitUsage
	}
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(badArgs)
			if !ok {
				panic(r)
			}
			fmt.Fprintf(os.Stderr, "testenv: %s %q: %s\n", name, args, msg)
			code = exitUsage
		}
	}()
	deadline := time.Now().Add(defaultLifetime)
	if s, ok := os.LookupEnv(EnvDeadline); ok {
		ns, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			usage("bad %s %q", EnvDeadline, s)
		}
		deadline = time.Unix(0, ns)
	}
	// The watchdog covers every helper, not only hang: nothing started by a test may
	// outlive it, even if the test binary died without killing it.
	time.AfterFunc(time.Until(deadline), func() {
		// Keep exit code 3 even if nobody reads stderr any more.
		signal.Ignore(syscall.SIGPIPE)
		fmt.Fprintf(os.Stderr, "testenv: helper %s reached its deadline\n", name)
		os.Exit(exitDeadline)
	})
	return h(args)
}

// hang blocks until the watchdog of runHelper ends the process at the deadline.
func hang() int {
	select {}
}

// flood writes n bytes of floodPattern to w in writes of chunk bytes.
func flood(w io.Writer, n, chunk int) error { return writePattern(w, floodPattern, n, chunk) }

// writePattern writes the first n bytes of pattern repeated, in writes of chunk bytes.
func writePattern(w io.Writer, pattern string, n, chunk int) error {
	buf := patternData(pattern, chunk+len(pattern))
	for off := 0; off < n; {
		k := min(chunk, n-off)
		s := off % len(pattern)
		if _, err := w.Write(buf[s : s+k]); err != nil {
			return err
		}
		off += k
	}
	return nil
}

func patternData(pattern string, n int) []byte {
	return []byte(strings.Repeat(pattern, n/len(pattern)+1)[:n])
}

// FloodData returns the first n bytes that the flood helpers write to each stream.
func FloodData(n int) []byte { return patternData(floodPattern, n) }

// command returns a command that runs helper name of this binary, with the environment
// of this helper (owner, deadline, test).
func command(name string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, EnvHelper+"=")
	}), EnvHelper+"="+name)
	return cmd, nil
}

// spawn starts helper name, in a new session if setsid, with stdout and stderr (nil
// means /dev/null), and does not wait for it.
func spawn(name string, setsid bool, stdout, stderr *os.File) (*exec.Cmd, error) {
	cmd, err := command(name)
	if err != nil {
		return nil, err
	}
	// A nil *os.File in the io.Writer fields would not mean /dev/null.
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	return cmd, cmd.Start()
}

// crash kills the process with sig, as the kernel would kill a C program.
func crash(sig syscall.Signal) int {
	signal.Reset(sig)
	// Go's runtime catches SIGSEGV, SIGBUS, SIGFPE, SIGABRT... even from kill(2), prints
	// a traceback and exits 2; restore the kernel's default action instead. A zeroed
	// struct sigaction is SIG_DFL; SIGKILL and SIGSTOP refuse it and need nothing.
	var act [8]uint64
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	// No core file in the package directory (core_pattern is "core" on these machines).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	unix.Kill(os.Getpid(), sig)
	time.Sleep(time.Second)
	fmt.Fprintf(os.Stderr, "testenv: crash: still alive after %v\n", sig)
	return exitSurvived
}

// concurrently runs fs at the same time and returns the first error.
func concurrently(fs ...func() error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// check turns the result of a write into an exit code, reporting the error on stderr.
func check[T any](_ T, err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return exitFailed
	}
	return 0
}

// badArgs is the panic value of usage; runHelper recovers it.
type badArgs string

func usage(format string, a ...any) {
	panic(badArgs(fmt.Sprintf(format, a...)))
}

func nargs(args []string, lo, hi int) {
	if len(args) < lo || len(args) > hi {
		if lo == hi {
			usage("want %d arguments, got %d", lo, len(args))
		}
		usage("want %d to %d arguments, got %d", lo, hi, len(args))
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		usage("not a number: %q", s)
	}
	return n
}

// count parses a non-negative number.
func count(s string) int {
	n := atoi(s)
	if n < 0 {
		usage("negative count %d", n)
	}
	return n
}

func duration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		usage("not a duration: %q", s)
	}
	return d
}

// signalArg parses "SIGSEGV", "SEGV", "segv" or "11".
func signalArg(s string) syscall.Signal {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			usage("no signal %d", n)
		}
		return syscall.Signal(n)
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		usage("no signal %q", s)
	}
	return sig
}
