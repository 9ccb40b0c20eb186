package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// helper returns an unstarted command running helper name.
func helper(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	argv, env := testenv.Command(t, name, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	return cmd
}

// start starts cmd and makes sure it is killed and waited for when the test ends.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
}

// pipe returns an os.Pipe whose write end is for a child; closeW closes the parent's copy.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func readPid(t *testing.T, r io.Reader) int {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("reading pid: %q, %v", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
	if err != nil {
		t.Fatalf("reading pid: %v", err)
	}
	return pid
}

func waitStatus(t *testing.T, err error) syscall.WaitStatus {
	t.Helper()
	ee, ok := errors.AsType[*exec.ExitError](err)
	if !ok {
		t.Fatalf("want an *exec.ExitError, got %v", err)
	}
	return ee.Sys().(syscall.WaitStatus)
}

// session returns the session id of pid from /proc/PID/stat.
func session(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

func kill(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Errorf("kill %d: %v", pid, err)
		}
	}
	testenv.WaitGone(t, pids, 5*time.Second)
}

func TestNames(t *testing.T) {
	t.Parallel()
	names := testenv.Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() not sorted: %q", names)
	}
	for _, want := range []string{
		"echo", "echo-stderr", "cat", "hang", "ignore-term", "flood", "flood-lines",
		"orphan-holds-pipe", "setsid-escape", "double-fork", "exit", "read-stdin-then-write",
		"write-without-reading-stdin", "close-stdout-and-linger", "crash", "duplex", "sleep",
		"print-pid-then-hang", "env", "pwd", "partial-then-hang", "lines-slowly",
		"pg-basebackup", "report-while-reading", "progress-flood", "lines-100",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %q", want)
		}
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	argv, env := testenv.Command(t, "echo", "a", "b")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(argv[0]) || argv[0] != exe || !slices.Equal(argv[1:], []string{"a", "b"}) {
		t.Errorf("argv = %q, want [%s a b]", argv, exe)
	}
	vars := make(map[string]string)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	delete(vars, "GOCOVERDIR") // in a -cover build
	delete(vars, "GORACE")     // in a -race build
	if len(vars) != 5 || vars["PATH"] == "" || vars[testenv.EnvHelper] != "echo" ||
		vars[testenv.EnvOwner] != strconv.Itoa(os.Getpid()) || vars[testenv.EnvTest] != t.Name() {
		t.Errorf("env = %q", env)
	}
	ns, err := strconv.ParseInt(vars[testenv.EnvDeadline], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Unix(0, ns)
	if td, ok := t.Deadline(); ok && !deadline.Before(td) {
		t.Errorf("helper deadline %v not before the test's %v", deadline, td)
	}
	if !deadline.After(time.Now()) {
		t.Errorf("helper deadline %v already passed", deadline)
	}
}

// recorder stands in for a testing.TB to observe failures.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func TestCommandUnknownHelper(t *testing.T) {
	t.Parallel()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testenv.Command(r, "no-such-helper")
	}()
	<-done
	if len(r.failures) != 1 || !strings.Contains(r.failures[0], "no-such-helper") {
		t.Errorf("failures = %q, want one naming the helper", r.failures)
	}
}

func TestUnknownHelperAtRunTime(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "echo")
	cmd.Env = append(cmd.Env, testenv.EnvHelper+"=no-such-helper")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ws := waitStatus(t, err); ws.ExitStatus() != 2 || !strings.Contains(stderr.String(), "no-such-helper") {
		t.Errorf("exit %v, stderr %q; want exit 2 naming the helper", ws, stderr.String())
	}
}

func TestBadArgs(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"flood"}, {"flood", "x"}, {"flood", "-1"}, {"flood", "10", "sideways"},
		{"flood", "10", "stdout", "0"}, {"exit"}, {"exit", "seven"}, {"sleep", "soon"},
		{"crash", "NOPE"}, {"crash", "0"}, {"lines-slowly", "1"}, {"hang", "extra"},
		{"pg-basebackup", "x"}, {"pg-basebackup", "3", "soon"}, {"pg-basebackup", "3", "1ms", "extra"},
		{"report-while-reading"}, {"report-while-reading", "0"}, {"report-while-reading", "-3"},
		{"progress-flood"}, {"progress-flood", "many"}, {"lines-100"}, {"lines-100", "-100"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			cmd := helper(t, args[0], args[1:]...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ws := waitStatus(t, err); ws.ExitStatus() != 2 {
				t.Errorf("exit %v, want 2", ws)
			}
			if stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "testenv: "+args[0]) {
				t.Errorf("stdout %q, stderr %q; want only a message on stderr", stdout.String(), stderr.String())
			}
		})
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"echo", "echo-stderr"} {
		cmd := helper(t, name, "a", "b c", "")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		got, quiet := stdout.String(), stderr.String()
		if name == "echo-stderr" {
			got, quiet = quiet, got
		}
		if got != "a b c \n" || quiet != "" {
			t.Errorf("%s: got %q and %q on the other stream", name, got, quiet)
		}
	}
}

func TestExit(t *testing.T) {
	t.Parallel()
	if err := helper(t, "exit", "0").Run(); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	if ws := waitStatus(t, helper(t, "exit", "7").Run()); ws.ExitStatus() != 7 {
		t.Errorf("exit 7: %v", ws)
	}
}

func TestFlood(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, chunk       string
		stream         string
		stdout, stderr int
	}{
		{"1048576", "", "", 1 << 20, 0},
		{"100000", "1000", "stderr", 0, 100000},
		{"300000", "4097", "both", 300000, 300000},
		{"0", "", "stdout", 0, 0},
	} {
		args := []string{tc.n}
		if tc.stream != "" {
			args = append(args, tc.stream)
		}
		if tc.chunk != "" {
			args = append(args, tc.chunk)
		}
		cmd := helper(t, "flood", args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("flood %q: %v", args, err)
		}
		if !bytes.Equal(stdout.Bytes(), testenv.FloodData(tc.stdout)) ||
			!bytes.Equal(stderr.Bytes(), testenv.FloodData(tc.stderr)) {
			t.Errorf("flood %q: %d bytes on stdout and %d on stderr, want %d and %d of the pattern",
				args, stdout.Len(), stderr.Len(), tc.stdout, tc.stderr)
		}
	}
}

func TestFloodLines(t *testing.T) {
	t.Parallel()
	out, err := helper(t, "flood-lines", "1000").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")
	if len(lines) != 1001 || lines[0] != "line 1" || lines[999] != "line 1000" || lines[1000] != "" {
		t.Errorf("got %d lines: %q ... %q", len(lines), lines[0], lines[len(lines)-2:])
	}
}

func TestCat(t *testing.T) {
	t.Parallel()
	in := bytes.Repeat([]byte("cat\x00\xff"), 3<<20/5)
	cmd := helper(t, "cat")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("cat: %d bytes out for %d in, or different content", len(out), len(in))
	}
}

func TestReadStdinThenWrite(t *testing.T) {
	t.Parallel()
	in := testenv.FloodData(200000)
	cmd := helper(t, "read-stdin-then-write")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), in) || stderr.String() != "read 200000 bytes\n" {
		t.Errorf("%d bytes out, stderr %q", stdout.Len(), stderr.String())
	}
}

func TestWriteWithoutReadingStdin(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "write-without-reading-stdin", "1048576")
	cmd.Stdin = bytes.NewReader(make([]byte, 8<<20))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, testenv.FloodData(1<<20)) {
		t.Errorf("got %d bytes, want the 1 MiB pattern", len(out))
	}
}

func TestDuplex(t *testing.T) {
	t.Parallel()
	const n = 4 << 20
	cmd := helper(t, "duplex", strconv.Itoa(n))
	cmd.Stdin = bytes.NewReader(make([]byte, n))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), testenv.FloodData(n)) || !bytes.Equal(stderr.Bytes(), testenv.FloodData(n)) {
		t.Errorf("got %d and %d bytes, want %d of the pattern on each", stdout.Len(), stderr.Len(), n)
	}
}

func TestCloseStdoutAndLinger(t *testing.T) {
	t.Parallel()
	r, w := pipe(t)
	cmd := helper(t, "close-stdout-and-linger", "1h")
	cmd.Stdout, cmd.Stderr = w, w
	start(t, cmd)
	w.Close()
	if out, err := io.ReadAll(r); err != nil || len(out) != 0 {
		t.Fatalf("read %q, %v; want EOF", out, err)
	}
	if !testenv.Alive(cmd.Process.Pid) {
		t.Fatal("helper exited; want it to linger after closing its output")
	}
	cmd.Process.Kill()
	if ws := waitStatus(t, cmd.Wait()); ws.Signal() != syscall.SIGKILL {
		t.Errorf("status %v, want killed", ws)
	}
}

func TestCrash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg  string
		want syscall.Signal
	}{
		{"SEGV", syscall.SIGSEGV},
		{"SIGABRT", syscall.SIGABRT},
		{"8", syscall.SIGFPE},
		{"bus", syscall.SIGBUS},
		{"KILL", syscall.SIGKILL},
		{"TERM", syscall.SIGTERM},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			t.Parallel()
			cmd := helper(t, "crash", tc.arg)
			cmd.Dir = t.TempDir()
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			ws := waitStatus(t, cmd.Run())
			if !ws.Signaled() || ws.Signal() != tc.want {
				t.Errorf("status %v, want death by %v", ws, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("output %q, want none", out.String())
			}
			if ents, _ := os.ReadDir(cmd.Dir); len(ents) != 0 {
				t.Errorf("crash left %v in its directory", ents)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"hang"}, {"sleep", "1h"}, {"ignore-term"}, {"partial-then-hang", "x"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			argv, env := testenv.Command(t, args[0], args[1:]...)
			deadline := time.Now().Add(300 * time.Millisecond)
			env = append(env, testenv.EnvDeadline+"="+strconv.FormatInt(deadline.UnixNano(), 10))
			// The context only ends a helper that ignored its deadline.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env = env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			ws := waitStatus(t, cmd.Run())
			if ws.ExitStatus() != 3 || time.Now().Before(deadline) || !strings.Contains(stderr.String(), "deadline") {
				t.Errorf("status %v at %v past the deadline, stderr %q; want exit 3 at the deadline",
					ws, time.Since(deadline), stderr.String())
			}
		})
	}
}

func TestIgnoreTerm(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "ignore-term")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("read %q, %v; want ready", line, err)
	}
	pid := cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	syscall.Kill(pid, syscall.SIGINT)
	// A process with the default disposition dies within a few milliseconds.
	if gone := waitGoneQuietly(pid, 200*time.Millisecond); gone {
		t.Fatal("ignore-term died of SIGTERM or SIGINT")
	}
	cmd.Process.Kill()
	if ws := waitStatus(t, cmd.Wait()); ws.Signal() != syscall.SIGKILL {
		t.Errorf("status %v, want killed", ws)
	}
}

// waitGoneQuietly reports whether pid is gone within d.
func waitGoneQuietly(pid int, d time.Duration) bool {
	for stop := time.Now().Add(d); time.Now().Before(stop); time.Sleep(10 * time.Millisecond) {
		if !testenv.Alive(pid) {
			return true
		}
	}
	return !testenv.Alive(pid)
}

func TestOrphanHoldsPipe(t *testing.T) {
	t.Parallel()
	r, w := pipe(t)
	cmd := helper(t, "orphan-holds-pipe")
	cmd.Stdout = w
	start(t, cmd)
	w.Close()
	gpid := readPid(t, r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("orphan-holds-pipe: %v", err)
	}
	if !testenv.Alive(gpid) {
		t.Fatalf("grandchild %d not alive after its parent exited", gpid)
	}
	kill(t, gpid)
	// The grandchild was the last holder of the pipe.
	if out, err := io.ReadAll(r); err != nil || len(out) != 0 {
		t.Errorf("read %q, %v after the grandchild died; want EOF", out, err)
	}
}

func TestSetsidEscape(t *testing.T) {
	t.Parallel()
	r, w := pipe(t)
	cmd := helper(t, "setsid-escape")
	cmd.Stdout = w
	start(t, cmd)
	w.Close()
	gpid := readPid(t, r)
	if d := testenv.Descendants(cmd.Process.Pid); !slices.Equal(d, []int{gpid}) {
		t.Errorf("Descendants(helper) = %v, want [%d]", d, gpid)
	}
	if d := testenv.Descendants(os.Getpid()); !slices.Contains(d, cmd.Process.Pid) || !slices.Contains(d, gpid) {
		t.Errorf("Descendants(self) = %v, want the helper %d and its child %d", d, cmd.Process.Pid, gpid)
	}
	if sid := session(t, gpid); sid != gpid {
		t.Errorf("grandchild's session %d, want its own %d", sid, gpid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !testenv.Alive(gpid) {
		t.Fatal("grandchild died with the helper; want it to escape")
	}
	if slices.Contains(testenv.Descendants(os.Getpid()), gpid) {
		t.Errorf("orphaned grandchild %d still counted as a descendant", gpid)
	}
	kill(t, gpid)
}

func TestDoubleFork(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "double-fork")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(string(out), "\n"))
	if err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	defer kill(t, pid)
	if !testenv.Alive(pid) {
		t.Fatalf("daemon %d not alive", pid)
	}
	if slices.Contains(testenv.Descendants(os.Getpid()), pid) {
		t.Errorf("daemon %d is still our descendant", pid)
	}
	if sid := session(t, pid); sid != pid {
		t.Errorf("daemon's session %d, want its own %d", sid, pid)
	}
	for fd := range 3 {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); target != os.DevNull {
			t.Errorf("daemon's fd %d is %q, %v; want %s", fd, target, err, os.DevNull)
		}
	}
}

func TestAliveZombie(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "hang")
	start(t, cmd)
	pid := cmd.Process.Pid
	if !testenv.Alive(pid) {
		t.Fatal("running helper not Alive")
	}
	cmd.Process.Kill()
	if !waitGoneQuietly(pid, 5*time.Second) {
		t.Fatal("killed helper still Alive")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("unreaped child vanished: %v", err)
	}
	if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); f[0] != "Z" {
		t.Errorf("state %q, want Z", f[0])
	}
	cmd.Wait()
	if testenv.Alive(pid) {
		t.Error("reaped child Alive")
	}
}

func TestWaitGoneKillsSurvivors(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "hang")
	start(t, cmd)
	pid := cmd.Process.Pid
	r := &recorder{TB: t}
	testenv.WaitGone(r, []int{pid}, 50*time.Millisecond)
	if len(r.failures) != 1 || !strings.Contains(r.failures[0], strconv.Itoa(pid)) ||
		!strings.Contains(r.failures[0], "hang") {
		t.Errorf("failures = %q, want one naming pid %d and its helper", r.failures, pid)
	}
	if ws := waitStatus(t, cmd.Wait()); ws.Signal() != syscall.SIGKILL {
		t.Errorf("status %v, want killed", ws)
	}
}

func TestDescendantsOfNothing(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "hang")
	start(t, cmd)
	if d := testenv.Descendants(cmd.Process.Pid); len(d) != 0 {
		t.Errorf("Descendants(hang) = %v, want none", d)
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	if err := helper(t, "sleep", "10ms").Run(); err != nil {
		t.Error(err)
	}
}

func TestPrintPidThenHang(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "print-pid-then-hang")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	if pid := readPid(t, stdout); pid != cmd.Process.Pid {
		t.Errorf("printed %d, want %d", pid, cmd.Process.Pid)
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "env")
	cmd.Env = append(cmd.Env, "A_VAR=with = and spaces")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(cmd.Env))
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("env printed\n%q\nwant\n%q", got, want)
	}
}

func TestPwd(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "pwd")
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != cmd.Dir+"\n" {
		t.Errorf("pwd printed %q, want %q", out, cmd.Dir)
	}
}

func TestPartialThenHang(t *testing.T) {
	t.Parallel()
	r, w := pipe(t)
	cmd := helper(t, "partial-then-hang", "no newline")
	cmd.Stdout = w
	start(t, cmd)
	w.Close()
	buf := make([]byte, len("no newline"))
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "no newline" {
		t.Fatalf("read %q, %v", buf, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("then read %q, %v; want EOF", rest, err)
	}
}

func TestLinesSlowly(t *testing.T) {
	t.Parallel()
	out, err := helper(t, "lines-slowly", "3", "10ms").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "tick 1\ntick 2\ntick 3\n" {
		t.Errorf("got %q", out)
	}
}

// pgProgress is a progress update of pg_basebackup -v -P, as progress_report in
// pg_basebackup.c formats it.
var pgProgress = regexp.MustCompile(`^( *)(\d+)/(\d+) kB \((\d+)%\), 0/1 tablespace \(pgdata/base/1/\d+\)$`)

func TestPgBasebackup(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "pg-basebackup", "7", "1ms")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	// Writes of up to PIPE_BUF bytes are atomic and reads return whole writes: a read
	// that ends inside an update means the update took more than one write.
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		n, err := stderr.Read(buf)
		if n > 0 {
			if c := buf[n-1]; c != '\r' && c != '\n' {
				t.Errorf("a read ended inside a line: %q", buf[:n])
			}
			out.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	head, rest, _ := strings.Cut(out.String(), "pg_basebackup: starting background WAL receiver\n")
	if want := "pg_basebackup: initiating base backup, waiting for checkpoint to complete\n" +
		"pg_basebackup: checkpoint completed\n" +
		"pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1\n"; head != want {
		t.Errorf("verbose lines before the progress:\n%q\nwant\n%q", head, want)
	}
	updates, tail, _ := strings.Cut(rest, "\r\n")
	if want := "pg_basebackup: write-ahead log end point: 0/2000100\n" +
		"pg_basebackup: waiting for background process to finish streaming ...\n" +
		"pg_basebackup: syncing data to disk ...\n" +
		"pg_basebackup: base backup completed\n"; tail != want {
		t.Errorf("after the progress:\n%q\nwant\n%q", tail, want)
	}
	lastPct := -1
	n := 0
	for u := range strings.SplitSeq(updates, "\r") {
		n++
		m := pgProgress.FindStringSubmatch(u)
		if m == nil {
			t.Errorf("update %d is %q, not a pg_basebackup progress line", n, u)
			continue
		}
		done, _ := strconv.Atoi(m[2])
		total, _ := strconv.Atoi(m[3])
		pct, _ := strconv.Atoi(m[4])
		if len(m[1])+len(m[2]) != len(m[3]) || done > total || pct != done*100/total || pct < lastPct {
			t.Errorf("update %d: %q", n, u)
		}
		lastPct = pct
	}
	if n != 7 || lastPct != 100 {
		t.Errorf("%d updates ending at %d%%, want 7 ending at 100%%:\n%q", n, lastPct, updates)
	}
}

func TestPgBasebackupDefaults(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "pg-basebackup")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stderr.String(), "tablespace"); n != 20 {
		t.Errorf("%d updates, want 20", n)
	}
	if took := time.Since(began); took < 19*20*time.Millisecond {
		t.Errorf("took %v, want 19 pauses of 20ms at least", took)
	}
}

func TestReportWhileReading(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "report-while-reading", "4")
	cmd.Stdin = strings.NewReader("a\nb c\r\n\nlast")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "A\nB C\r\n\nLAST"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	want := "processed 1 lines (25%)\nprocessed 2 lines (50%)\nprocessed 3 lines (75%)\nprocessed 4 lines (100%)\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// TestReportWhileReadingReportsEachLine checks that a line is reported and echoed
// before the next one is even written.
func TestReportWhileReadingReportsEachLine(t *testing.T) {
	t.Parallel()
	cmd := helper(t, "report-while-reading", "2")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	stdout, stderr := bufio.NewReader(stdoutPipe), bufio.NewReader(stderrPipe)
	for i, in := range []string{"one\n", "two\n"} {
		if _, err := io.WriteString(stdin, in); err != nil {
			t.Fatal(err)
		}
		wantProgress := fmt.Sprintf("processed %d lines (%d%%)\n", i+1, (i+1)*50)
		if got, err := stderr.ReadString('\n'); got != wantProgress {
			t.Fatalf("stderr %q, %v; want %q", got, err, wantProgress)
		}
		if got, err := stdout.ReadString('\n'); got != strings.ToUpper(in) {
			t.Fatalf("stdout %q, %v; want %q", got, err, strings.ToUpper(in))
		}
	}
	stdin.Close()
	if rest, err := io.ReadAll(stdout); err != nil || len(rest) != 0 {
		t.Errorf("then stdout %q, %v; want EOF", rest, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestProgressFlood(t *testing.T) {
	t.Parallel()
	const n = 100000
	cmd := helper(t, "progress-flood", strconv.Itoa(n))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	var out bytes.Buffer
	buf := make([]byte, 1<<20)
	reads := 0
	for {
		k, err := stderr.Read(buf)
		if k > 0 {
			reads++
			out.Write(buf[:k])
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	// Batched writes: far fewer reads than updates.
	if reads > out.Len()/1024 {
		t.Errorf("%d bytes came in %d reads; want writes of a few KiB", out.Len(), reads)
	}
	body, ok := strings.CutSuffix(out.String(), "\n")
	updates := strings.Split(body, "\r")
	if !ok || updates[0] != "" || len(updates) != n+1 {
		t.Fatalf("%d bytes, %d updates; want %d then a newline", out.Len(), len(updates)-1, n)
	}
	for i, u := range updates[1:] {
		if want := fmt.Sprintf("(%d%%)", (i+1)*100/n); u != want {
			t.Fatalf("update %d is %q, want %q", i+1, u, want)
		}
	}
}

func TestLines100(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 100, 1 << 20, 1000050} {
		out, err := helper(t, "lines-100", strconv.Itoa(n)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, testenv.Lines100Data(n)) {
			t.Errorf("lines-100 %d: %d bytes, or not the lines of Lines100Data", n, len(out))
		}
	}
	data := testenv.Lines100Data(250)
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) != 3 || len(lines[0]) != 99 || len(lines[1]) != 99 || len(lines[2]) != 50 {
		t.Errorf("Lines100Data(250) = %q", data)
	}
}

// guardMarker stops TestRecursionGuard from recursing if the guard it tests is broken.
const guardMarker = "RUNBOX_TESTENV_GUARD_TEST"

func TestRecursionGuard(t *testing.T) {
	t.Parallel()
	if os.Getenv(guardMarker) != "" {
		t.Skip("running inside TestRecursionGuard")
	}
	argv, env := testenv.Command(t, "echo", "hello")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// A helper whose environment was dropped on the way.
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{env[0], guardMarker + "=1"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if ws := waitStatus(t, cmd.Run()); ws.ExitStatus() != 2 || !strings.Contains(out.String(), "refusing") {
		t.Errorf("status %v, output %q; want exit 2 and a refusal", ws, out.String())
	}
}

// leakFixture makes TestLeakFixture leak, for TestLeakCheck.
const leakFixture = "RUNBOX_TESTENV_LEAK_FIXTURE"

// TestLeakFixture starts a process it never waits for and one it leaves running; it
// runs only inside TestLeakCheck.
func TestLeakFixture(t *testing.T) {
	if os.Getenv(leakFixture) == "" {
		t.Skip("a fixture of TestLeakCheck")
	}
	for _, args := range [][]string{{"exit", "0"}, {"hang"}} {
		cmd := helper(t, args[0], args[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("started %s %d\n", args[0], cmd.Process.Pid)
	}
}

func TestLeakCheck(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestLeakFixture$", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), leakFixture+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var started []int
	for line := range strings.Lines(string(out)) {
		var name string
		var pid int
		if _, err := fmt.Sscanf(line, "started %s %d", &name, &pid); err == nil {
			started = append(started, pid)
		}
	}
	if len(started) != 2 {
		t.Fatalf("fixture printed %q, stderr %q", out, stderr.String())
	}
	defer testenv.WaitGone(t, started[1:], 5*time.Second)
	if ws := waitStatus(t, err); ws.ExitStatus() != 1 {
		t.Errorf("status %v, want exit 1", ws)
	}
	for _, want := range []string{
		fmt.Sprintf("pid %d (", started[0]), "exited but was never waited for",
		fmt.Sprintf("pid %d %s=\"hang\" %s=\"TestLeakFixture\"", started[1], testenv.EnvHelper, testenv.EnvTest),
		"still running, killed",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("leak report lacks %q:\n%s", want, stderr.String())
		}
	}
}

func init() {
	testenv.Register("test-registered", func(args []string) int {
		fmt.Println(len(args))
		return 5
	})
}

func TestRegister(t *testing.T) {
	t.Parallel()
	if !slices.Contains(testenv.Names(), "test-registered") {
		t.Errorf("Names() = %q lacks the registered helper", testenv.Names())
	}
	out, err := helper(t, "test-registered", "a", "b").Output()
	if ws := waitStatus(t, err); ws.ExitStatus() != 5 || string(out) != "2\n" {
		t.Errorf("status %v, output %q; want 5 and \"2\\n\"", ws, out)
	}
	for _, name := range []string{"echo", ""} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			testenv.Register(name, func([]string) int { return 0 })
		}()
	}
}
