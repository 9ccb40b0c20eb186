package sandboxtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/sandbox"
)

// Leftovers is implemented by backends that can list what they left on the host:
// cgroups, mounts, containers, processes of the run's uid range. It lists only what
// belongs to runs of this backend value, and is called when none is in progress. The
// suite fails a case after which it is not empty.
type Leftovers interface {
	Leftovers(ctx context.Context) ([]string, error)
}

// Holder is implemented by backends that keep processes between runs on purpose, such
// as warm boxes built ahead of runs. The host invariants do not count them, nor their
// descendants, as processes a run left behind.
type Holder interface {
	HeldProcesses() []int
}

const (
	// timeoutSlack is how long after its wall time limit a run may take to return: the
	// kill's grace period, the teardown, a loaded machine.
	timeoutSlack = 3 * time.Second
	// ctxSlack is how far beyond the wall time limit each run's context ends. It only
	// keeps a broken backend from hanging the suite: the elapsed-time check fails long
	// before, so that the wall time limit is seen to be enforced by the backend itself.
	ctxSlack = 30 * time.Second
	// defaultWall is the wall time limit of cases that do not test time: they end in
	// well under a second, but a loaded machine starts Node slowly.
	defaultWall = 10 * time.Second
	// canaryTimeout bounds the canary run after each case.
	canaryTimeout = 15 * time.Second
	// leftoversTimeout bounds a call of Leftovers.
	leftoversTimeout = 10 * time.Second
	// invalidSpecTimeout bounds Run with an invalid spec, which must not start anything.
	invalidSpecTimeout = 2 * time.Second
	// clockSlack is how much longer than the time Run took the result's wall time may be.
	clockSlack = 50 * time.Millisecond
	// holderGrace is how long a backend that holds processes has to list a new one: a
	// warm box is started, then registered.
	holderGrace = 2 * time.Second

	// secretEnv is set in the test process; its value must appear in no box.
	secretEnv = "RUNBOX_SANDBOXTEST_SECRET"
	// escaped is what programs print when they get past a point they must not reach.
	// Programs spell it in two pieces, so an interpreter that echoes a source line in
	// an error report does not print it.
	escaped = "ESCAPED"
	// blocked separates what a program tried from the reason it failed: "open /x
	// BLOCKED EROFS".
	blocked = " BLOCKED "
)

// The variants of a case: the three languages, and a plain command.
const (
	python     = "python"
	javascript = "javascript"
	bash       = "bash"
	command    = "command"
)

// langs is the order in which a case's languages run.
var langs = []string{python, javascript, bash}

// excluded names the rows of the catalogue that Run does not exercise, and why.
var excluded = map[string]string{
	"I2": "the supervisor cannot be SIGKILLed through the Backend interface; the native backend's own tests kill it mid-run and check that no orphan survives and that New cleans up",
	"I4": "queueing and admission belong to the runner and the server, which test overload themselves",
	"I5": "EBUSY on cleanup needs the backend's internals; the native backend's own tests inject it",
	"J6": "a box that cannot be set up needs a broken host; each backend's own tests break it (an unwritable cgroup root, a stopped Docker daemon)",
}

// hostileCase is one row of the catalogue, in each language where it applies, or one
// of several cases of a row.
type hostileCase struct {
	id   string // the row: "A1"
	name string // "busy_loop"
	// code is the program in each language it runs in; command, a command run as the
	// "command" variant.
	code    map[string]string
	command []string
	files   []sandbox.File
	env     map[string]string
	// combined asks for the interleaved output.
	combined bool
	// limits bound every variant; zero fields take the backend's defaults but WallTime,
	// which is defaultWall.
	limits sandbox.Limits
	// langLimits replace limits for one variant (Node needs more memory than Python).
	langLimits map[string]sandbox.Limits
	// check asserts what the row expects, beyond what every run must satisfy.
	check func(t *testing.T, o *outcome)

	// multi replaces the single run for cases of several runs, or of none, once per
	// variant of variants.
	multi    func(t *testing.T, variant string)
	variants []string

	// host, when set, runs before each variant and returns what checks the host after.
	host func(t *testing.T) func(t *testing.T)
	// amd64 marks Python programs that make system calls by x86_64's numbers.
	amd64 bool
}

func (c *hostileCase) variantNames() []string {
	if c.multi != nil {
		return c.variants
	}
	var out []string
	for _, l := range langs {
		if _, ok := c.code[l]; ok {
			out = append(out, l)
		}
	}
	if c.command != nil {
		out = append(out, command)
	}
	return out
}

// spec returns the spec of variant v.
func (c *hostileCase) spec(v string) sandbox.Spec {
	spec := sandbox.Spec{Files: c.files, Env: c.env, Combined: c.combined, Limits: c.limits}
	if l, ok := c.langLimits[v]; ok {
		spec.Limits = l
	}
	if spec.Limits.WallTime == 0 {
		spec.Limits.WallTime = defaultWall
	}
	if v == command {
		spec.Command = c.command
	} else {
		spec.Language, spec.Code = v, c.code[v]
	}
	return spec
}

// outcome is one run: what was asked, what came back, and how long Run took.
type outcome struct {
	*sandbox.Result
	variant string
	spec    sandbox.Spec
	err     error
	elapsed time.Duration
	// unstarted: the caller stopped the run before its program could have said
	// anything, so the box may never have started and have no usage to report.
	unstarted bool
}

// suite is one call of Run.
type suite struct {
	b sandbox.Backend
	// secret is the value of secretEnv in the test process.
	secret string
	// marker is random and names the files, sockets and segments of this call.
	marker string
	// exe and wd are the test binary and the test's working directory: the service's
	// own files, which no box may read.
	exe, wd  string
	hostname string
	// victim is a file of the test's that boxes link to (E6): it must not change.
	victim string
	net    *hostNet
	runs   atomic.Int64
}

// Run runs the conformance suite against b. Each row of the hostile catalogue becomes a
// subtest named after its id ("A1_busy_loop/python"), in Python, JavaScript and Bash
// where the row applies; the host invariants are checked after every case.
func Run(t *testing.T, b sandbox.Backend) {
	s := newSuite(t, b)
	for _, c := range s.cases() {
		t.Run(c.id+"_"+c.name, func(t *testing.T) {
			for _, v := range c.variantNames() {
				t.Run(v, func(t *testing.T) { s.runCase(t, c, v) })
			}
		})
	}
}

func newSuite(t *testing.T, b sandbox.Backend) *suite {
	t.Helper()
	s := &suite{b: b, secret: randomHex(16), marker: randomHex(6)}
	t.Setenv(secretEnv, s.secret)
	var err error
	if s.exe, err = os.Executable(); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	if s.wd, err = os.Getwd(); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	if s.hostname, err = os.Hostname(); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	s.victim = filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(s.victim, []byte("the host's file\n"), 0o600); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	s.net = listenHost(t, s.marker)
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *suite) runCase(t *testing.T, c *hostileCase, v string) {
	if c.amd64 && v == python && runtime.GOARCH != "amd64" {
		t.Skip("the program makes system calls by their x86_64 numbers")
	}
	before := snapshot(t)
	defer s.checkHost(t, before)
	if c.host != nil {
		if after := c.host(t); after != nil {
			defer after(t)
		}
	}
	if c.multi != nil {
		c.multi(t, v)
		return
	}
	o := s.run(t, c.spec(v))
	if o.Result != nil && c.check != nil {
		c.check(t, o)
	}
}

// run runs spec, checks what every result must satisfy, and returns the outcome. It
// fails the test at once when there is no result.
func (s *suite) run(t *testing.T, spec sandbox.Spec) *outcome {
	t.Helper()
	o := s.exec(context.Background(), spec)
	if !s.checkCommon(t, o) {
		t.FailNow()
	}
	return o
}

// exec runs spec under ctx, with a deadline far past the spec's wall time limit.
func (s *suite) exec(ctx context.Context, spec sandbox.Spec) *outcome {
	if spec.RunID == "" {
		spec.RunID = fmt.Sprintf("sbt-%s-%d", s.marker, s.runs.Add(1))
	}
	lim := sandbox.WithDefaults(spec.Limits)
	ctx, cancel := context.WithTimeout(ctx, lim.WallTime+ctxSlack)
	defer cancel()
	start := time.Now()
	r, err := s.b.Run(ctx, spec)
	o := &outcome{Result: r, spec: spec, err: err, elapsed: time.Since(start)}
	switch {
	case spec.Command != nil:
		o.variant = command
	default:
		o.variant = spec.Language
	}
	return o
}

// checkCommon checks what every result must satisfy, whatever the program did. It
// reports whether there is a result to look at. It only calls t.Errorf, so
// goroutines may call it.
func (s *suite) checkCommon(t *testing.T, o *outcome) bool {
	t.Helper()
	r := o.Result
	if r == nil {
		t.Errorf("Run returned no result, error %v (after %v)", o.err, o.elapsed.Round(time.Millisecond))
		return false
	}
	lim := sandbox.WithDefaults(o.spec.Limits)
	switch r.Status {
	case sandbox.StatusOK, sandbox.StatusRuntimeError, sandbox.StatusSyntaxError, sandbox.StatusTimeout,
		sandbox.StatusOOM, sandbox.StatusOutputLimit, sandbox.StatusSignaled, sandbox.StatusSandboxError:
	default:
		t.Errorf("status %q is not a status word", r.Status)
	}

	// Errors: sandbox_error, and only it, comes with an error wrapping ErrSandbox.
	if r.Status == sandbox.StatusSandboxError {
		if !errors.Is(o.err, sandbox.ErrSandbox) {
			t.Errorf("sandbox_error with error %v, want one wrapping sandbox.ErrSandbox", o.err)
		}
		if r.Error == "" {
			t.Errorf("sandbox_error without Error saying why")
		}
		if r.ExitCode != nil || r.Signal != "" {
			t.Errorf("sandbox_error with exit code %v and signal %q, want neither", deref(r.ExitCode), r.Signal)
		}
	} else {
		if o.err != nil {
			t.Errorf("status %s with error %v, want no error", r.Status, o.err)
		}
		if r.Error != "" {
			t.Errorf("status %s with Error %q, want it only with sandbox_error", r.Status, r.Error)
		}
		if (r.ExitCode == nil) == (r.Signal == "") {
			t.Errorf("exit code %v and signal %q: want exactly one of them", deref(r.ExitCode), r.Signal)
		}
		if r.Signal != "" && !strings.HasPrefix(r.Signal, "SIG") {
			t.Errorf("signal %q is not a signal name", r.Signal)
		}
	}

	// Limit goes with the status.
	wantLimits := map[sandbox.Status][]string{
		sandbox.StatusTimeout:     {"wall", "cpu"},
		sandbox.StatusOOM:         {"memory"},
		sandbox.StatusOutputLimit: {"stdout", "stderr"},
	}[r.Status]
	if wantLimits == nil && r.Limit != "" || wantLimits != nil && !slices.Contains(wantLimits, r.Limit) {
		t.Errorf("status %s with limit %q, want one of %q", r.Status, r.Limit, wantLimits)
	}

	// Identity and the effective limits.
	if r.RunID != o.spec.RunID {
		t.Errorf("run id %q, want %q", r.RunID, o.spec.RunID)
	}
	if r.Backend != s.b.Name() {
		t.Errorf("backend %q, want %q", r.Backend, s.b.Name())
	}
	if r.Language != o.spec.Language {
		t.Errorf("language %q, want %q", r.Language, o.spec.Language)
	}
	if r.Limits != lim {
		t.Errorf("limits %+v, want the effective limits %+v", r.Limits, lim)
	}

	// Output: bounded, counted, flagged.
	checkStream(t, "stdout", r.Stdout, r.StdoutBytes, r.StdoutTruncated, lim.Stdout)
	checkStream(t, "stderr", r.Stderr, r.StderrBytes, r.StderrTruncated, lim.Stderr)
	if r.Status == sandbox.StatusOutputLimit {
		if r.Limit == "stdout" && !r.StdoutTruncated || r.Limit == "stderr" && !r.StderrTruncated {
			t.Errorf("output_limit on %s without its truncation flag", r.Limit)
		}
	}
	if o.spec.Combined && (r.Stderr != "" || r.StderrBytes != 0) {
		t.Errorf("combined output, yet %d bytes on stderr", r.StderrBytes)
	}

	// Time and memory.
	if r.Status != sandbox.StatusSandboxError {
		if r.WallTime <= 0 {
			t.Errorf("wall time %v, want > 0", r.WallTime)
		}
		if r.PeakMemory <= 0 && !o.unstarted {
			t.Errorf("peak memory %d, want > 0", r.PeakMemory)
		}
	}
	if r.WallTime > o.elapsed+clockSlack {
		t.Errorf("wall time %v exceeds the %v Run took", r.WallTime, o.elapsed)
	}
	if r.CPUTime < 0 {
		t.Errorf("cpu time %v < 0", r.CPUTime)
	}
	if r.PeakMemory > lim.Memory {
		t.Errorf("peak memory %d exceeds the memory limit %d", r.PeakMemory, lim.Memory)
	}
	if max := lim.WallTime + timeoutSlack; o.elapsed > max {
		t.Errorf("Run took %v, more than the wall time limit %v and %v of slack", o.elapsed, lim.WallTime, timeoutSlack)
	}

	// Nothing got out, and the result survives JSON.
	for _, f := range []struct{ name, s string }{{"stdout", r.Stdout}, {"stderr", r.Stderr}} {
		if strings.Contains(f.s, escaped) {
			t.Errorf("the program got where it must not:\n%s", linesWith(f.s, escaped))
		}
		if strings.Contains(f.s, s.secret) {
			t.Errorf("the value of %s, set in the test process, appears in the box's %s", secretEnv, f.name)
		}
	}
	checkJSON(t, r)
	if t.Failed() {
		t.Logf("result: %s", describe(o))
	}
	return true
}

func checkStream(t *testing.T, name, kept string, total int64, truncated bool, limit int64) {
	t.Helper()
	n := int64(len(kept))
	if n > limit {
		t.Errorf("%s: %d bytes kept, over the cap of %d", name, n, limit)
	}
	if total < n {
		t.Errorf("%s: %d bytes counted, fewer than the %d kept", name, total, n)
	}
	if truncated != (total > n) {
		t.Errorf("%s: truncated=%v with %d bytes written and %d kept", name, truncated, total, n)
	}
}

// checkJSON checks that r encodes to valid JSON that decodes to the same output bytes.
func checkJSON(t *testing.T, r *sandbox.Result) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Errorf("json.Marshal(result): %v", err)
		return
	}
	if !json.Valid(b) {
		t.Errorf("json.Marshal(result) is not valid JSON")
		return
	}
	var back sandbox.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Errorf("result does not round-trip through JSON: %v", err)
		return
	}
	if back.Stdout != r.Stdout || back.Stderr != r.Stderr || back.Status != r.Status {
		t.Errorf("result changed through JSON: stdout %q → %q, stderr %q → %q, status %s → %s",
			clip(r.Stdout), clip(back.Stdout), clip(r.Stderr), clip(back.Stderr), r.Status, back.Status)
	}
}

// checkInvalid checks that spec is rejected at once as invalid, with nothing run.
func (s *suite) checkInvalid(t *testing.T, spec sandbox.Spec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), invalidSpecTimeout+ctxSlack)
	defer cancel()
	start := time.Now()
	r, err := s.b.Run(ctx, spec)
	elapsed := time.Since(start)
	if !errors.Is(err, sandbox.ErrInvalidSpec) {
		t.Errorf("Run: error %v, want one wrapping sandbox.ErrInvalidSpec", err)
	}
	if r != nil {
		t.Errorf("Run returned a result (status %s) for an invalid spec, want none", r.Status)
	}
	if elapsed > invalidSpecTimeout {
		t.Errorf("Run took %v to reject an invalid spec, want at most %v", elapsed, invalidSpecTimeout)
	}
}

// hostState is what the invariants compare: the test process's live descendants and
// its mount table.
type hostState struct {
	descendants []int
	mounts      map[string]int
}

func snapshot(t *testing.T) hostState {
	t.Helper()
	m, err := readMounts()
	if err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	return hostState{descendants: testenv.Descendants(os.Getpid()), mounts: m}
}

// checkHost runs the canary, then checks that the backend left nothing, that no
// process of the test's was left running, and that no mount appeared.
func (s *suite) checkHost(t *testing.T, before hostState) {
	t.Helper()
	s.canary(t)
	if l, ok := s.b.(Leftovers); ok {
		ctx, cancel := context.WithTimeout(context.Background(), leftoversTimeout)
		left, err := l.Leftovers(ctx)
		cancel()
		if err != nil {
			t.Errorf("host: Leftovers: %v", err)
		}
		if len(left) > 0 {
			t.Errorf("host: the backend left %d thing(s) behind:\n\t%s", len(left), strings.Join(left, "\n\t"))
		}
	}
	for _, pid := range s.strays(before.descendants) {
		t.Errorf("host: a process of the run outlived it (killed now): %s", describePid(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	after, err := readMounts()
	if err != nil {
		t.Errorf("host: %v", err)
		return
	}
	if added := addedMounts(before.mounts, after); len(added) > 0 {
		t.Errorf("host: %d mount(s) appeared in the test process's mount table:\n\t%s", len(added), strings.Join(added, "\n\t"))
	}
}

// strays returns the live descendants of the test process that are not in before and
// that the backend does not hold (see Holder). Those of a backend that holds processes
// get holderGrace to be listed.
func (s *suite) strays(before []int) []int {
	h, holds := s.b.(Holder)
	deadline := time.Now().Add(holderGrace)
	for {
		held := make(map[int]bool)
		if holds {
			for _, pid := range h.HeldProcesses() {
				held[pid] = true
			}
		}
		var out []int
		for _, pid := range testenv.Descendants(os.Getpid()) {
			if !slices.Contains(before, pid) && !heldAncestor(pid, held) {
				out = append(out, pid)
			}
		}
		if len(out) == 0 || !holds || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heldAncestor reports whether pid or one of its ancestors is in held.
func heldAncestor(pid int, held map[int]bool) bool {
	self := os.Getpid()
	for range 64 {
		if held[pid] {
			return true
		}
		if pid <= 1 || pid == self {
			return false
		}
		pid = parentOf(pid)
	}
	return false
}

// parentOf returns the parent of pid, 0 when it is gone.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// canary checks that a run right after the case is clean.
func (s *suite) canary(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), canaryTimeout)
	defer cancel()
	spec := sandbox.Spec{
		RunID:   fmt.Sprintf("sbt-%s-canary-%d", s.marker, s.runs.Add(1)),
		Command: []string{"/bin/true"},
		Limits:  sandbox.Limits{WallTime: 5 * time.Second},
	}
	start := time.Now()
	r, err := s.b.Run(ctx, spec)
	if err != nil || r == nil || r.Status != sandbox.StatusOK || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Errorf("host: the canary run of /bin/true after the case failed after %v: error %v, result %s",
			time.Since(start).Round(time.Millisecond), err, describe(&outcome{Result: r, spec: spec}))
	}
}

func describePid(pid int) string {
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return fmt.Sprintf("pid %d %q (stat %s)", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "),
		strings.TrimSpace(string(st)))
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// describe summarizes a result for a failure message.
func describe(o *outcome) string {
	r := o.Result
	if r == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "status=%s limit=%q exit=%v signal=%q wall=%v cpu=%v peak=%d elapsed=%v",
		r.Status, r.Limit, deref(r.ExitCode), r.Signal, r.WallTime, r.CPUTime, r.PeakMemory, o.elapsed.Round(time.Millisecond))
	if r.Diagnostic != nil {
		fmt.Fprintf(&b, " diagnostic=%+v", *r.Diagnostic)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, " error=%q", r.Error)
	}
	fmt.Fprintf(&b, "\nstdout (%d bytes, truncated=%v):\n%s\nstderr (%d bytes, truncated=%v):\n%s",
		r.StdoutBytes, r.StdoutTruncated, clip(r.Stdout), r.StderrBytes, r.StderrTruncated, clip(r.Stderr))
	return b.String()
}

// clip shortens s for a message.
func clip(s string) string {
	const n = 2048
	if len(s) <= n {
		return s
	}
	return s[:n/2] + fmt.Sprintf("\n… %d bytes …\n", len(s)-n) + s[len(s)-n/2:]
}

func linesWith(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, "\t"+l)
		}
	}
	return strings.Join(out, "\n")
}
