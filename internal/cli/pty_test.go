package cli_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/hinshun/vt10x"
)

// TestBarOnTerminal runs runbox on a real pseudo-terminal and renders what it drew:
// log lines above a progress bar.
func TestBarOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	const cols, rows = 100, 40
	pty.Setsize(ptmx, &pty.Winsize{Cols: cols, Rows: rows})

	cmd := exec.Command(os.Args[0], "__runbox", "exec", "--progress", "pg_basebackup", "--",
		os.Args[0], "__testhelper", "pg-basebackup", "40", "25ms")
	cmd.Env = append(os.Environ(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()

	var raw bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&raw, ptmx); close(copied) }() // ends with EIO when the child closes the tty
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("runbox: %v\n%s", err, raw.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("runbox did not finish")
	}
	<-copied

	term := vt10x.New(vt10x.WithSize(cols, rows))
	term.Write(raw.Bytes())
	screen := term.String()
	var shown []string
	for _, l := range strings.Split(screen, "\n") {
		if strings.TrimSpace(l) != "" {
			shown = append(shown, strings.TrimRight(l, " "))
		}
	}
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
	if n := bytes.Count(raw.Bytes(), []byte("\x1b[")); n < 4 {
		t.Errorf("%d escape sequences: the bar did not move", n)
	}
}
