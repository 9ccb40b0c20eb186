package testenv

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables that turn the test binary into a helper and tie it to its test.
const (
	// EnvHelper names the helper to run; its presence means "act as a helper".
	EnvHelper = "RUNBOX_TESTENV_HELPER"
	// EnvOwner is the pid of the test binary that asked for the helper; the leak check
	// of [Main] finds leftovers by it.
	EnvOwner = "RUNBOX_TESTENV_OWNER"
	// EnvDeadline is a time in Unix nanoseconds at which helpers exit by themselves.
	EnvDeadline = "RUNBOX_TESTENV_DEADLINE"
	// EnvTest is the name of the test that asked for the helper, for the leak report.
	EnvTest = "RUNBOX_TESTENV_TEST"
)

const (
	// defaultLifetime bounds a helper whose test has no deadline (benchmarks, fuzz
	// targets, tests run without -timeout).
	defaultLifetime = 10 * time.Minute
	// maxDeadlineMargin is how long before the test's deadline helpers give up, so that
	// the test sees them exit, rather than the testing package panicking first.
	maxDeadlineMargin = 5 * time.Second
	// leakGrace is how long the leak check lets a process that is already dying finish.
	leakGrace = time.Second
	// defaultPath is the PATH given to helpers when the test binary has none.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Main runs the helper named by [EnvHelper] with os.Args[1:] and exits with its code
// when that variable is set. Otherwise it runs the tests, then the leak check: processes
// still running with [EnvOwner] set to this process's pid, and children of this process
// that exited but were never waited for, are reported on stderr, the running ones are
// killed, and the test binary exits with code 1. Main does not return.
func Main(m *testing.M) {
	if name, ok := os.LookupEnv(EnvHelper); ok {
		os.Exit(runHelper(name, os.Args[1:]))
	}
	if startedByItself() {
		fmt.Fprintf(os.Stderr, "testenv: %s was started by itself without %s and without -test. flags; "+
			"refusing to run the tests recursively (did the code under test drop the environment?)\n",
			os.Args[0], EnvHelper)
		os.Exit(2)
	}
	code := m.Run()
	if leakCheck(os.Getpid()) {
		code = 1
	}
	os.Exit(code)
}

// Command returns the command line and the environment that run helper name with args.
// argv[0] is the absolute path of the test binary. env is minimal: PATH and the
// variables of this package, plus GOCOVERDIR in a coverage build and GORACE in a race
// build, without which an instrumented helper would print a warning on stderr or linger
// a second before exiting. The helper's deadline is a little before t's deadline, or
// 10 minutes from now when t has none. Command fails the test for an unknown helper.
func Command(t testing.TB, name string, args ...string) (argv []string, env []string) {
	t.Helper()
	if _, ok := helpers[name]; !ok {
		t.Fatalf("testenv: unknown helper %q; known helpers: %s", name, strings.Join(Names(), ", "))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testenv: cannot find the test binary: %v", err)
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	argv = append([]string{exe}, args...)
	env = []string{
		"PATH=" + path,
		EnvHelper + "=" + name,
		EnvOwner + "=" + strconv.Itoa(os.Getpid()),
		EnvDeadline + "=" + strconv.FormatInt(helperDeadline(t).UnixNano(), 10),
		EnvTest + "=" + t.Name(),
	}
	return argv, append(env, instrumentationEnv()...)
}

// instrumentationEnv keeps a test binary built with -cover or -race quiet and quick when
// it runs as a helper.
func instrumentationEnv() []string {
	var env []string
	if testing.CoverMode() != "" {
		dir := os.Getenv("GOCOVERDIR")
		if f := flag.Lookup("test.gocoverdir"); dir == "" && f != nil {
			dir = f.Value.String()
		}
		// The helper's counters join those of the test binary in the same directory.
		if dir != "" {
			env = append(env, "GOCOVERDIR="+dir)
		}
	}
	if raceEnabled {
		// The race runtime sleeps a second at exit unless told not to.
		env = append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	return env
}

// Register adds a helper of the calling package's own, run as name with the arguments
// given to [Command]; it returns the exit code. Call it from an init function, so that
// the helper exists both in the test binary and when that binary runs as the helper.
// Register panics if name is empty or already taken.
func Register(name string, helper func(args []string) int) {
	if name == "" || helper == nil {
		panic("testenv: Register with an empty name or a nil helper")
	}
	if _, dup := helpers[name]; dup {
		panic(fmt.Sprintf("testenv: helper %q registered twice", name))
	}
	helpers[name] = helper
}

// Names returns the names of the registered helpers, sorted.
func Names() []string {
	return slices.Sorted(maps.Keys(helpers))
}

func helperDeadline(t testing.TB) time.Time {
	// testing.TB has no Deadline; *testing.T (and anything embedding it) has.
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			margin := max(0, min(maxDeadlineMargin, time.Until(dl)/10))
			return dl.Add(-margin)
		}
	}
	return time.Now().Add(defaultLifetime)
}

// startedByItself reports whether an ancestor of this process is this same binary while
// no -test. flag was given: a helper whose environment was dropped on the way, which
// would otherwise run the whole test suite again, recursively. A test that re-runs the
// binary with -test.run on purpose is left alone.
func startedByItself() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.") || strings.HasPrefix(a, "--test.") {
			return false
		}
	}
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		return false
	}
	pid := os.Getppid()
	for range 64 {
		if pid <= 0 {
			return false
		}
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && os.SameFile(fi, self) {
			return true
		}
		st, err := readStat(pid)
		if err != nil || st.ppid == pid {
			return false
		}
		pid = st.ppid
	}
	return false
}

// leakCheck reports and kills what the tests left behind. It returns whether there was
// anything.
func leakCheck(owner int) bool {
	var leaks []leak
	for stop := time.Now().Add(leakGrace); ; time.Sleep(pollInterval) {
		leaks = findLeaks(owner)
		if len(leaks) == 0 {
			return false
		}
		if time.Now().After(stop) {
			break
		}
	}
	fmt.Fprintf(os.Stderr, "testenv: a test started a process it never waited for or left a process behind:\n")
	for _, l := range leaks {
		if l.zombie {
			fmt.Fprintf(os.Stderr, "\tpid %d (%s): exited but was never waited for\n", l.pid, l.comm)
			continue
		}
		fmt.Fprintf(os.Stderr, "\t%s: still running, killed\n", describe(l.pid))
		_ = syscall.Kill(l.pid, syscall.SIGKILL)
	}
	return true
}

type leak struct {
	pid    int
	zombie bool
	comm   string
}

// findLeaks lists running processes tagged with owner, and the children of owner, running
// or not yet reaped.
func findLeaks(owner int) []leak {
	var leaks []leak
	tag := EnvOwner + "=" + strconv.Itoa(owner)
	for _, pid := range pids() {
		if pid == owner {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.state == 'X' {
			continue
		}
		zombie := st.state == 'Z'
		if st.ppid == owner || (!zombie && slices.Contains(environ(pid), tag)) {
			leaks = append(leaks, leak{pid: pid, zombie: zombie, comm: st.comm})
		}
	}
	return leaks
}
