package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/cli"
	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/internal/testenv"
)

func TestMain(m *testing.M) {
	// Dispatch for tests that start the binary themselves (the pty test).
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "__runbox":
			os.Exit(cli.Main(context.Background(), os.Args[2:], iostreams.System()))
		case "__testhelper":
			os.Exit(testenv.Run(os.Args[2], os.Args[3:]))
		}
	}
	testscript.Main(m, map[string]func(){
		"testhelper": func() {
			if len(os.Args) < 2 {
				os.Exit(2)
			}
			os.Exit(testenv.Run(os.Args[1], os.Args[2:]))
		},
		"runbox": func() {
			os.Exit(cli.Main(context.Background(), os.Args[1:], iostreams.System()))
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
			"waitfile": cmdWaitFile,
			"ndjson":   cmdNDJSON,
			"runjson":  cmdRunJSON,
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

// waitfile NAME waits (up to 10 s) until the file exists in $WORK.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	path := ts.MkAbs(args[0])
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	ts.Fatalf("%s never appeared", args[0])
}

// ndjson checks that the last command's stdout is a valid event stream: every line a
// JSON object with the documented fields, seq 1, 2, 3…, started first, exited last.
func cmdNDJSON(ts *testscript.TestScript, neg bool, args []string) {
	lines := strings.Split(strings.TrimRight(ts.ReadFile("stdout"), "\n"), "\n")
	for i, line := range lines {
		var ev api.Event
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			ts.Fatalf("line %d is not an event: %v: %s", i+1, err, line)
		}
		if ev.Seq != uint64(i+1) || ev.Time.IsZero() {
			ts.Fatalf("line %d: seq %d time %v", i+1, ev.Seq, ev.Time)
		}
		switch {
		case i == 0 && ev.Type != api.EventStarted, i == len(lines)-1 && (ev.Type != api.EventExited || ev.Result == nil):
			ts.Fatalf("line %d: unexpected %s", i+1, ev.Type)
		case ev.Type == api.EventLine && (ev.Stream == "" || ev.Kind == ""):
			ts.Fatalf("line %d: line event without stream or kind", i+1)
		case ev.Type == api.EventProgress && ev.Progress == nil:
			ts.Fatalf("line %d: progress event without progress", i+1)
		}
	}
}

// runjson FILE=STATUS... checks that stdout is `runbox run --json`: one result per
// script (the sandbox result with "file", or "file" and "error") and a summary line,
// with the given statuses ("error" for a script that could not run).
func cmdRunJSON(ts *testscript.TestScript, neg bool, args []string) {
	lines := strings.Split(strings.TrimRight(ts.ReadFile("stdout"), "\n"), "\n")
	got := map[string]string{}
	for i, line := range lines[:len(lines)-1] {
		var r struct {
			api.RunResult
			File  string `json:"file"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &r.RunResult); err != nil {
			ts.Fatalf("line %d is not a result: %v: %s", i+1, err, line)
		}
		var extra struct {
			File  string `json:"file"`
			Error string `json:"error"`
		}
		ts.Check(json.Unmarshal([]byte(line), &extra))
		status := string(r.Status)
		if status == "" {
			if extra.Error == "" {
				ts.Fatalf("line %d has neither a status nor an error: %s", i+1, line)
			}
			status = "error"
		}
		if extra.File == "" {
			ts.Fatalf("line %d has no file: %s", i+1, line)
		}
		got[extra.File] = status
	}
	var sum struct {
		Summary *struct {
			Scripts, Failed int
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Summary == nil || sum.Summary.Scripts != len(lines)-1 {
		ts.Fatalf("last line is not the summary of %d scripts: %s", len(lines)-1, lines[len(lines)-1])
	}
	for _, a := range args {
		file, want, _ := strings.Cut(a, "=")
		if got[file] != want {
			ts.Fatalf("%s: status %q, want %q (all: %v)", file, got[file], want, got)
		}
	}
	if len(args) > 0 && len(got) != len(args) {
		ts.Fatalf("%d results, want %d: %v", len(got), len(args), got)
	}
}
