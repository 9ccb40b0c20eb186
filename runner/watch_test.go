package runner_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/internal/progress"
	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/runner"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recorder collects events and checks that they come one at a time, in order.
type recorder struct {
	mu     sync.Mutex
	events []api.Event
	busy   bool
	t      *testing.T
}

func (r *recorder) emit(ev api.Event) {
	r.mu.Lock()
	if r.busy {
		r.t.Error("Emit called concurrently")
	}
	r.busy = true
	r.events = append(r.events, ev)
	r.busy = false
	r.mu.Unlock()
}

func (r *recorder) ofType(tp api.EventType) []api.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.Event
	for _, ev := range r.events {
		if ev.Type == tp {
			out = append(out, ev)
		}
	}
	return out
}

func helperCmd(t *testing.T, name string, args ...string) *proc.Cmd {
	return cmdOf(testenv.Command(t, name, args...))
}

func testenvCommand(t testing.TB, name string, args ...string) ([]string, []string) {
	return testenv.Command(t, name, args...)
}

func cmdOf(argv, env []string) *proc.Cmd { return &proc.Cmd{Args: argv, Env: env} }

func TestWatchPgBasebackup(t *testing.T) {
	rec := &recorder{t: t}
	parser, err := progress.New("pg_basebackup")
	if err != nil {
		t.Fatal(err)
	}
	w := &runner.Watch{Cmd: helperCmd(t, "pg-basebackup", "30", "5ms"), Progress: parser, Emit: rec.emit}
	wire, res, err := w.Run(context.Background())
	if err != nil || res.Status != proc.StatusOK {
		t.Fatalf("run: %v %v", err, res.Status)
	}
	evs := rec.events
	if evs[0].Type != api.EventStarted || evs[len(evs)-1].Type != api.EventExited {
		t.Errorf("first %s last %s", evs[0].Type, evs[len(evs)-1].Type)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	for _, ev := range rec.ofType(api.EventLine) {
		if strings.Contains(ev.Text, "tablespace") {
			t.Errorf("a progress line came as a line event: %q", ev.Text)
		}
	}
	if !strings.Contains(joinText(rec.ofType(api.EventLine)), "base backup completed") {
		t.Errorf("verbose lines missing")
	}
	prog := rec.ofType(api.EventProgress)
	if len(prog) == 0 || len(prog) > 30 {
		t.Errorf("%d progress events for 30 updates in ~150ms (throttled to 100ms)", len(prog))
	}
	if wire.Progress == nil || wire.Progress.Percent != 100 || wire.Progress.Unit != "kB" {
		t.Errorf("last progress in the result: %+v", wire.Progress)
	}
	if !strings.Contains(string(res.Stderr), "tablespace") {
		t.Errorf("progress lines must stay in the capture")
	}
	if b, err := json.Marshal(evs); err != nil || !json.Valid(b) {
		t.Errorf("events do not marshal: %v", err)
	}
}

func joinText(evs []api.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Text + "\n")
	}
	return b.String()
}

func TestWatchProgressFloodIsThrottled(t *testing.T) {
	rec := &recorder{t: t}
	parser, _ := progress.New("percent")
	w := &runner.Watch{Cmd: helperCmd(t, "progress-flood", "100000"), Progress: parser, Emit: rec.emit}
	start := time.Now()
	_, res, err := w.Run(context.Background())
	// The throttle keeps time by the lines' read times, which run on past the process's
	// own Duration while the pipe is drained: the bound is the Watch's elapsed time.
	elapsed := time.Since(start)
	if err != nil || res.Status != proc.StatusOK {
		t.Fatalf("%v %v", err, res.Status)
	}
	n := len(rec.ofType(api.EventProgress))
	if n < 1 || n > 1+int(elapsed/runner.DefaultProgressInterval)+1 {
		t.Errorf("%d progress events in %v: not throttled", n, elapsed)
	}
}

type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) Line(_ time.Time, stream, text string) error {
	l.mu.Lock()
	l.lines = append(l.lines, stream+" "+text)
	l.mu.Unlock()
	return nil
}

func TestWatchLogsEveryLineWhileFeedingStdin(t *testing.T) {
	rec := &recorder{t: t}
	log := &lineLog{}
	parser, _ := progress.New("percent")
	c := helperCmd(t, "report-while-reading", "3")
	c.Stdin = proc.String("a\nb\nc\n")
	w := &runner.Watch{Cmd: c, Progress: parser, Emit: rec.emit, Log: log}
	wire, res, err := w.Run(context.Background())
	if err != nil || res.Status != proc.StatusOK {
		t.Fatalf("%v %v", err, res.Status)
	}
	if got := joinText(rec.ofType(api.EventLine)); got != "A\nB\nC\n" {
		t.Errorf("line events %q", got)
	}
	if len(log.lines) != 6 {
		t.Errorf("log has %d lines, want all 6 (3 echoed, 3 progress): %q", len(log.lines), log.lines)
	}
	if wire.Progress == nil || wire.Progress.Percent != 100 {
		t.Errorf("progress %+v", wire.Progress)
	}
	if string(res.Stdout) != "A\nB\nC\n" {
		t.Errorf("capture %q", res.Stdout)
	}
}

// sigChild traps the signals a test forwards and reports them on stdout.
const sigChild = `trap 'echo got INT' INT; trap 'echo got TERM' TERM; trap 'echo got HUP' HUP; echo ready; while :; do sleep 0.01; done`

func startWatch(t *testing.T, shell string, grace time.Duration) (chan os.Signal, *recorder, chan *api.ProcessResult) {
	rec := &recorder{t: t}
	sigs := make(chan os.Signal, 4)
	c := proc.Command("/bin/sh", "-c", shell)
	c.Grace = grace
	c.Timeout = 30 * time.Second
	w := &runner.Watch{Cmd: c, Emit: rec.emit, Signals: sigs}
	done := make(chan *api.ProcessResult, 1)
	go func() {
		wire, _, err := w.Run(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- wire
	}()
	waitLine(t, rec, "ready")
	return sigs, rec, done
}

func waitLine(t *testing.T, rec *recorder, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(joinText(rec.ofType(api.EventLine)), text+"\n") {
			return
		}
	}
	t.Fatalf("no line %q", text)
}

func TestWatchForwardsSignals(t *testing.T) {
	sigs, rec, done := startWatch(t, sigChild, 5*time.Second)
	sigs <- syscall.SIGTERM
	waitLine(t, rec, "got TERM")
	sigs <- syscall.SIGHUP
	waitLine(t, rec, "got HUP")
	sigs <- syscall.SIGINT
	waitLine(t, rec, "got INT")
	// A second Ctrl-C within the grace period kills the tree.
	sigs <- syscall.SIGINT
	wire := <-done
	if !wire.Interrupted || wire.Signal == nil || *wire.Signal != "SIGKILL" {
		t.Errorf("interrupted %v signal %v", wire.Interrupted, wire.Signal)
	}
	var forwarded []string
	for _, ev := range rec.ofType(api.EventSignal) {
		forwarded = append(forwarded, ev.Signal)
	}
	if strings.Join(forwarded, ",") != "SIGTERM,SIGHUP,SIGINT,SIGKILL" {
		t.Errorf("signal events %v", forwarded)
	}
}

func TestWatchSecondInterruptAfterGraceIsForwarded(t *testing.T) {
	sigs, rec, done := startWatch(t, sigChild, 50*time.Millisecond)
	sigs <- syscall.SIGINT
	waitLine(t, rec, "got INT")
	time.Sleep(100 * time.Millisecond)
	sigs <- syscall.SIGINT // past the grace period: forwarded again, not a kill
	for deadline := time.Now().Add(5 * time.Second); strings.Count(joinText(rec.ofType(api.EventLine)), "got INT") < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("second SIGINT not forwarded")
		}
	}
	sigs <- syscall.SIGINT // within the grace of the last one: kill
	if wire := <-done; wire.Signal == nil || *wire.Signal != "SIGKILL" {
		t.Errorf("signal %v", wire.Signal)
	}
}

func TestWatchStartError(t *testing.T) {
	rec := &recorder{t: t}
	w := &runner.Watch{Cmd: proc.Command("runbox-no-such-command"), Emit: rec.emit}
	wire, _, err := w.Run(context.Background())
	if err == nil || wire.Status != "start_error" || len(rec.events) != 1 || rec.events[0].Type != api.EventExited {
		t.Errorf("err %v status %s events %d", err, wire.Status, len(rec.events))
	}
}
