package cli_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/hinshun/vt10x"
)

// onTerminal runs runbox with args on a real pseudo-terminal of cols×rows, in dir, and
// returns the bytes it wrote and the non-blank lines of the screen they render.
func onTerminal(t *testing.T, dir string, cols, rows int, args ...string) (raw []byte, shown []string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})

	cmd := exec.Command(os.Args[0], append([]string{"__runbox"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()

	var buf bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&buf, ptmx); close(copied) }() // ends with EIO when the child closes the tty
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("runbox: %v\n%s", err, buf.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("runbox did not finish")
	}
	<-copied

	term := vt10x.New(vt10x.WithSize(cols, rows))
	term.Write(buf.Bytes())
	for _, l := range strings.Split(term.String(), "\n") {
		if strings.TrimSpace(l) != "" {
			shown = append(shown, strings.TrimRight(l, " "))
		}
	}
	return buf.Bytes(), shown
}

// TestBarOnTerminal: runbox exec draws log lines above a progress bar.
func TestBarOnTerminal(t *testing.T) {
	raw, shown := onTerminal(t, "", 100, 40, "exec", "--progress", "pg_basebackup", "--",
		os.Args[0], "__testhelper", "pg-basebackup", "40", "25ms")
	screen := strings.Join(shown, "\n")
	if len(shown) < 3 {
		t.Fatalf("screen:\n%s", screen)
	}
	last := shown[len(shown)-1]
	if !strings.Contains(last, "100 %") || !strings.Contains(last, "[") {
		t.Errorf("last line is not a finished bar: %q\nscreen:\n%s", last, screen)
	}
	above := strings.Join(shown[:len(shown)-1], "\n")
	for _, want := range []string{"stderr pg_basebackup: checkpoint completed", "stderr pg_basebackup: base backup completed"} {
		if !strings.Contains(above, want) {
			t.Errorf("log line %q not above the bar; screen:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, "tablespace") {
		t.Errorf("progress lines printed as log lines; screen:\n%s", screen)
	}
	// mpb redraws in place: cursor-up sequences, more than one frame.
	if n := bytes.Count(raw, []byte("\x1b[")); n < 4 {
		t.Errorf("%d escape sequences: the bar did not move", n)
	}
}

// TestRunOnTerminal: runbox run shows a live line per running script, replaced by
// its verdict, then the summary; no live line is left on the screen.
func TestRunOnTerminal(t *testing.T) {
	dir := t.TempDir()
	for name, code := range map[string]string{
		"a.py":    "import time; time.sleep(0.6); print('a')",
		"b.js":    "setTimeout(() => console.log('b'), 300);",
		"c.sh":    "exit 3",
		"bad.py":  "print(",
		"slow.sh": "sleep 0.8",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, shown := onTerminal(t, dir, 120, 40, "run", "-j", "3", "--logs", filepath.Join(dir, "logs"), ".")
	screen := strings.Join(shown, "\n")
	for _, want := range []string{"ok            a.py (", "ok            b.js (", "runtime_error c.sh (",
		"syntax_error  bad.py (", "SCRIPT", "bad.py:1: SyntaxError:", "5 scripts: 3 ok, 1 runtime_error, 1 syntax_error"} {
		if !strings.Contains(screen, want) {
			t.Errorf("%q not on the screen:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, "running") {
		t.Errorf("a live line is left on the screen:\n%s", screen)
	}
	if !bytes.Contains(raw, []byte("running")) {
		t.Errorf("no live line was ever drawn:\n%q", raw)
	}
}
