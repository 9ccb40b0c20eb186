package proc_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/proc"
)

func TestRunResult(t *testing.T) {
	tests := []struct {
		name       string
		helper     []string
		wantStatus proc.Status
		wantExit   int
		wantSignal syscall.Signal
		wantStdout string
	}{
		{"ok", []string{"echo", "hello", "world"}, proc.StatusOK, 0, 0, "hello world\n"},
		{"exit 3", []string{"exit", "3"}, proc.StatusExitError, 3, 0, ""},
		{"exit 255", []string{"exit", "255"}, proc.StatusExitError, 255, 0, ""},
		{"segv", []string{"crash", "SEGV"}, proc.StatusSignaled, -1, syscall.SIGSEGV, ""},
		{"abort", []string{"crash", "ABRT"}, proc.StatusSignaled, -1, syscall.SIGABRT, ""},
		{"fpe", []string{"crash", "FPE"}, proc.StatusSignaled, -1, syscall.SIGFPE, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, helper(t, tt.helper[0], tt.helper[1:]...))
			if res.Status != tt.wantStatus || res.ExitCode != tt.wantExit || res.Signal != tt.wantSignal {
				t.Errorf("got status %s exit %d signal %v; want %s %d %v", res.Status, res.ExitCode, res.Signal, tt.wantStatus, tt.wantExit, tt.wantSignal)
			}
			if string(res.Stdout) != tt.wantStdout {
				t.Errorf("stdout %q, want %q", res.Stdout, tt.wantStdout)
			}
			if res.Pid <= 0 || res.Duration <= 0 || res.MaxRSS <= 0 || res.Argv[0] == "" {
				t.Errorf("missing pid, duration, rss or argv: %+v", res)
			}
			if (res.Err() == nil) != (tt.wantStatus == proc.StatusOK) {
				t.Errorf("Err() = %v for status %s", res.Err(), res.Status)
			}
		})
	}
}

func TestRusage(t *testing.T) {
	res := run(t, proc.Command("/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"))
	if res.UserCPU+res.SysCPU <= 0 {
		t.Errorf("no CPU time recorded: user %v sys %v", res.UserCPU, res.SysCPU)
	}
	if res.MaxRSS < 100<<10 {
		t.Errorf("max RSS %d bytes, implausibly small", res.MaxRSS)
	}
}

func TestCheckExitError(t *testing.T) {
	c := proc.Command("/bin/sh", "-c", `echo "first line of trouble" >&2; i=0; while [ $i -lt 2000 ]; do echo "noise $i" >&2; i=$((i+1)); done; echo "last words" >&2; exit 4`)
	c.Check = true
	res, err := c.Run(context.Background())
	ee, ok := errors.AsType[*proc.ExitError](err)
	if !ok {
		t.Fatalf("err = %v (%T), want *ExitError", err, err)
	}
	if ee.Result != res || !errors.Is(err, proc.ErrExitStatus) {
		t.Errorf("ExitError does not carry the result or unwrap to ErrExitStatus: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"exit status 4", "first line of trouble", "last words"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if len(msg) > 2000 {
		t.Errorf("error message is %d bytes; stderr should be cut to head and tail", len(msg))
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-exec")
	os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644)
	badFormat := filepath.Join(dir, "bad-format")
	os.WriteFile(badFormat, []byte("\x7fELF garbage that is no program"), 0o755)
	badInterp := filepath.Join(dir, "bad-interp")
	os.WriteFile(badInterp, []byte("#!/nonexistent/interpreter\n"), 0o755)

	tests := []struct {
		name string
		cmd  *proc.Cmd
		want error
	}{
		{"not found in PATH", proc.Command("runbox-no-such-command"), proc.ErrNotFound},
		{"absent path", proc.Command(filepath.Join(dir, "absent")), proc.ErrNotFound},
		{"not executable", proc.Command(notExec), proc.ErrPermission},
		{"directory", proc.Command(dir), proc.ErrPermission},
		{"exec format", proc.Command(badFormat), proc.ErrExecFormat},
		{"bad interpreter", proc.Command(badInterp), proc.ErrNotFound},
		{"empty args", &proc.Cmd{}, proc.ErrStart},
		{"bad dir", &proc.Cmd{Args: []string{"/bin/true"}, Dir: filepath.Join(dir, "absent")}, proc.ErrStart},
		{"dir is a file", &proc.Cmd{Args: []string{"/bin/true"}, Dir: notExec}, proc.ErrStart},
		{"unopenable stdin", &proc.Cmd{Args: []string{"/bin/true"}, Stdin: proc.FromFile(filepath.Join(dir, "absent"))}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tt.cmd.Run(context.Background())
			if _, ok := errors.AsType[*proc.StartError](err); !ok {
				t.Fatalf("err = %v (%T), want *StartError", err, err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.want)
			}
			if res == nil || res.Status != proc.StatusStartError {
				t.Errorf("result = %+v, want status start_error", res)
			}
		})
	}
}

func TestStdin(t *testing.T) {
	file := filepath.Join(t.TempDir(), "in")
	os.WriteFile(file, []byte("from a file"), 0o644)
	osFile, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer osFile.Close()
	tests := []struct {
		name  string
		stdin any
		want  string
	}{
		{"nil is /dev/null", nil, ""},
		{"bytes", proc.Bytes([]byte("some bytes")), "some bytes"},
		{"string", proc.String("a string"), "a string"},
		{"reader", strings.NewReader("plain reader"), "plain reader"},
		{"reader without WriterTo", struct{ *strings.Reader }{strings.NewReader("hidden")}, "hidden"},
		{"FromFile", proc.FromFile(file), "from a file"},
		{"os.File", osFile, "from a file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := helper(t, "cat")
			if tt.stdin != nil {
				c.Stdin = tt.stdin.(interface{ Read([]byte) (int, error) })
			}
			res := run(t, c)
			if string(res.Stdout) != tt.want || res.Status != proc.StatusOK {
				t.Errorf("got %q (%s), want %q", res.Stdout, res.Status, tt.want)
			}
		})
	}
	t.Run("FromFile missing", func(t *testing.T) {
		c := helper(t, "cat")
		c.Stdin = proc.FromFile(filepath.Join(t.TempDir(), "absent"))
		if _, err := c.Run(context.Background()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want ErrNotExist", err)
		}
	})
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestStdinReaderErrorIsReported(t *testing.T) {
	c := helper(t, "cat")
	c.Stdin = failingReader{}
	res, err := c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("err = %v, want the reader's error", err)
	}
	if res.Status != proc.StatusOK {
		t.Errorf("status %s: the child saw EOF and exited 0", res.Status)
	}
}

func TestEnvDir(t *testing.T) {
	argv, env := testenv.Command(t, "env")
	t.Run("replace", func(t *testing.T) {
		res := run(t, &proc.Cmd{Args: argv, Env: append(env, "ONLY=1")})
		if !strings.Contains(string(res.Stdout), "ONLY=1\n") || strings.Contains(string(res.Stdout), "HOME=") {
			t.Errorf("env not replaced: %s", res.Stdout)
		}
	})
	t.Run("extend overrides", func(t *testing.T) {
		res := run(t, &proc.Cmd{Args: argv, Env: append(env, "A=old", "B=keep"), ExtraEnv: []string{"A=new", "C=added"}})
		out := string(res.Stdout)
		if !strings.Contains(out, "A=new\n") || strings.Contains(out, "A=old") || !strings.Contains(out, "B=keep\n") || !strings.Contains(out, "C=added\n") {
			t.Errorf("extend: %s", out)
		}
	})
	t.Run("inherit", func(t *testing.T) {
		t.Setenv("RUNBOX_INHERITED", "yes")
		res := run(t, &proc.Cmd{Args: []string{"/usr/bin/env"}})
		if !strings.Contains(string(res.Stdout), "RUNBOX_INHERITED=yes") {
			t.Errorf("env not inherited")
		}
	})
	t.Run("dir", func(t *testing.T) {
		dir := t.TempDir()
		argv, env := testenv.Command(t, "pwd")
		res := run(t, &proc.Cmd{Args: argv, Env: env, Dir: dir})
		if strings.TrimSpace(string(res.Stdout)) != dir {
			t.Errorf("pwd = %q, want %q", res.Stdout, dir)
		}
	})
}

func TestRlimits(t *testing.T) {
	c := proc.Command("/bin/sh", "-c", "ulimit -n; ulimit -f")
	c.Rlimits = []proc.Rlimit{
		{Resource: syscall.RLIMIT_NOFILE, Cur: 64, Max: 64},
		{Resource: syscall.RLIMIT_FSIZE, Cur: 1 << 20, Max: 1 << 20},
	}
	res := run(t, c)
	if got := string(res.Stdout); got != "64\n2048\n" {
		t.Errorf("limits seen by the child %q, want 64 and 2048 (1 MiB in 512-byte blocks)", got)
	}
	c = proc.Command("/nonexistent-after-shim")
	c.Path = "/nonexistent-after-shim"
	c.Rlimits = []proc.Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 64, Max: 64}}
	res, _ = c.Run(context.Background())
	if res.Status == proc.StatusOK {
		t.Errorf("shim exec of a missing program succeeded")
	}
}

func TestCredentialAndSetsid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change credentials")
	}
	c := proc.Command("/usr/bin/id", "-u")
	c.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	if res := run(t, c); strings.TrimSpace(string(res.Stdout)) != "65534" {
		t.Errorf("id -u = %q", res.Stdout)
	}
	// Field 6 of /proc/self/stat is the session id; with Setsid it is the child's pid.
	c = proc.Command("/bin/sh", "-c", "read -r pid comm state ppid pgrp sid rest < /proc/self/stat; echo $pid $sid")
	c.Setsid = true
	res := run(t, c)
	f := strings.Fields(string(res.Stdout))
	if len(f) != 2 || f[0] != strconv.Itoa(res.Pid) || f[1] != f[0] {
		t.Errorf("not a new session: %q (pid %d)", res.Stdout, res.Pid)
	}
}

func TestLogger(t *testing.T) {
	var buf syncBuffer
	c := helper(t, "exit", "2")
	c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	run(t, c)
	out := string(buf.Bytes())
	for _, want := range []string{"proc: started", "proc: finished", "status=exit_error"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// nil discards: nothing to assert but that it runs.
	if res := run(t, helper(t, "exit", "0")); res.Status != proc.StatusOK {
		t.Errorf("status %s", res.Status)
	}
}

func TestWireJSON(t *testing.T) {
	res := run(t, proc.Command("/bin/sh", "-c", `printf 'ok\000\377'; kill -KILL $$`))
	w := res.Wire()
	if w.ExitCode != nil || w.Signal == nil || *w.Signal != "SIGKILL" {
		t.Errorf("exit code %v signal %v: want only the signal", w.ExitCode, w.Signal)
	}
	if w.StdoutEncoding != "base64" || w.Stdout != "b2sA/w==" {
		t.Errorf("stdout %q encoding %q", w.Stdout, w.StdoutEncoding)
	}
	w = run(t, proc.Command("/bin/sh", "-c", "exit 5")).Wire()
	if w.ExitCode == nil || *w.ExitCode != 5 || w.Signal != nil {
		t.Errorf("exit code %v signal %v: want only the exit code", w.ExitCode, w.Signal)
	}
}
