package cli_test

import (
	"context"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runboxhq/runbox/internal/cli"
	"github.com/runboxhq/runbox/internal/iostreams"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"runbox": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := cli.Main(ctx, os.Args[1:], iostreams.System())
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs the end-to-end scripts in testdata/script: the real runbox binary
// against real children.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mark":     cmdMark,
			"within":   cmdWithin,
			"noproc":   cmdNoProc,
			"killproc": cmdKill,
		},
	})
}

// mark records the time; within D fails if more than D has passed since.
func cmdMark(ts *testscript.TestScript, neg bool, args []string) {
	ts.Setenv("MARK", strconv.FormatInt(time.Now().UnixNano(), 10))
}

func cmdWithin(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: within DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	start, err := strconv.ParseInt(ts.Getenv("MARK"), 10, 64)
	ts.Check(err)
	if took := time.Since(time.Unix(0, start)); took > d {
		ts.Fatalf("took %v, want under %v", took, d)
	}
}

// noproc CMDLINE fails if a live (non-zombie) process has exactly that command line,
// after giving dying processes a second.
func cmdNoProc(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: noproc 'CMD ARGS'")
	}
	deadline := time.Now().Add(time.Second)
	for {
		live := findProcs(ts, args[0])
		if len(live) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range live {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			ts.Fatalf("processes left running: %q pids %v", args[0], live)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killproc CMDLINE kills the processes with that command line (clean-up of a case that
// leaves them on purpose).
func cmdKill(ts *testscript.TestScript, neg bool, args []string) {
	for _, pid := range findProcs(ts, args[0]) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// findProcs returns the live processes with exactly that command line that this script
// started: their environment carries the script's own $WORK, so a run of the same
// script elsewhere on the machine (a parallel go test) is neither waited for nor killed.
func findProcs(ts *testscript.TestScript, cmdline string) []int {
	mark := "\x00WORK=" + ts.Getenv("WORK") + "\x00"
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ") != cmdline {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !strings.Contains("\x00"+string(env), mark) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// TestExecOptions checks flag parsing through the runF seam, without running anything.
func TestExecOptions(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	var got *cli.ExecOptions
	cmd := cli.NewExecCmd(ios, func(_ context.Context, o *cli.ExecOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--timeout", "5s", "--signal", "INT", "--json", "--", "prog", "-x", "--timeout", "1"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Timeout != 5*time.Second || got.Signal != "INT" || !got.JSON || strings.Join(got.Argv, " ") != "prog -x --timeout 1" {
		t.Errorf("options %+v", got)
	}
	// Flags after the command belong to the command, even without "--".
	cmd = cli.NewExecCmd(ios, func(_ context.Context, o *cli.ExecOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"prog", "--json"})
	if err := cmd.Execute(); err != nil || got.JSON || strings.Join(got.Argv, " ") != "prog --json" {
		t.Errorf("interspersed: %v %+v", err, got)
	}
}

func TestMainExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"exec", "--", "/bin/sh", "-c", "exit 3"}, 3, ""},
		{[]string{"exec", "--", "/bin/sh", "-c", "kill -SEGV $$"}, 128 + 11, ""},
		{[]string{"exec", "--timeout", "100ms", "--", "/bin/sleep", "176"}, 124, "timed out"},
		{[]string{"exec", "--", "runbox-no-such-command"}, 127, "not found"},
		{[]string{"exec", "--", "/etc/passwd"}, 126, "permission denied"},
		{[]string{"exec"}, 125, "missing command"},
		{[]string{"exec", "--bogus", "x"}, 125, "unknown flag"},
		{[]string{"exec", "--timeout", "soon", "--", "true"}, 125, "invalid argument"},
		{[]string{"exec", "--timeout", "-1s", "--", "true"}, 125, "must not be negative"},
		{[]string{"exec", "--signal", "NOPE", "--", "true"}, 125, "unknown signal"},
		{[]string{"exec", "--capture-limit", "lots", "--", "true"}, 125, "capture-limit"},
		{[]string{"exec", "--containment", "jail", "--", "true"}, 125, "containment"},
		{[]string{"exec", "--input", "/nonexistent/file", "--", "cat"}, 125, "no such file"},
		{[]string{"frobnicate"}, 125, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ios, _, _, errOut := iostreams.Test()
			code := cli.Main(context.Background(), tt.args, ios)
			if code != tt.code || !strings.Contains(errOut.String(), tt.err) {
				t.Errorf("exit %d stderr %q; want %d and %q", code, errOut.String(), tt.code, tt.err)
			}
		})
	}
}
