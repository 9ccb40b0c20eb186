// Package host is the sandbox backend without isolation: each spec runs as a plain
// child process of runbox, in a temporary work directory, with the run's limits
// (a cgroup for memory and processes where one can be made, rlimits, the wall and CPU
// time, the output caps) and the box's clean environment, but with the host's file
// system, network, users and kernel surface. It is for code you trust (development,
// CI of your own scripts) and for hosts where the native backend cannot run; it does
// not pass the hostile conformance suite and does not claim to.
//
// It registers itself as "host".
package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/proc"
	"github.com/runboxhq/runbox/sandbox"
)

// Name is the name the backend registers under.
const Name = "host"

func init() {
	sandbox.Register(Name, func(context.Context) (sandbox.Backend, error) { return New(), nil })
}

// Backend runs specs unisolated. Safe for concurrent use.
type Backend struct{}

var _ sandbox.Backend = (*Backend)(nil)

// New returns the host backend.
func New() *Backend { return &Backend{} }

// Name returns "host".
func (*Backend) Name() string { return Name }

// Close does nothing: runs hold nothing once they return.
func (*Backend) Close() error { return nil }

// Run runs spec as a child process. See sandbox.Backend.
func (b *Backend) Run(ctx context.Context, spec sandbox.Spec) (*sandbox.Result, error) {
	p, err := sandbox.Prepare(spec)
	if err != nil {
		return nil, err
	}
	res := p.NewResult(Name)
	dir, err := os.MkdirTemp("", "runbox-host-")
	if err != nil {
		return sandbox.Fail(res, err)
	}
	defer os.RemoveAll(dir)
	p.WorkDir = dir
	if err := writeFiles(dir, p.Files); err != nil {
		return sandbox.Fail(res, err)
	}
	r, err := b.run(ctx, p, res, dir)
	if err != nil {
		return sandbox.Fail(res, err)
	}
	return r, nil
}

func (b *Backend) run(ctx context.Context, p *sandbox.Prepared, res *sandbox.Result, dir string) (*sandbox.Result, error) {
	lim := p.Limits
	env := make([]string, 0, len(p.Env))
	pathVar := ""
	for _, kv := range p.Env {
		switch {
		case strings.HasPrefix(kv, "HOME="):
			kv = "HOME=" + dir
		case strings.HasPrefix(kv, "PATH="):
			pathVar = strings.TrimPrefix(kv, "PATH=")
		}
		env = append(env, kv)
	}
	argv0, err := lookPath(p.Command[0], pathVar)
	if err != nil {
		return nil, err
	}
	cpu := uint64(lim.CPUTime.Seconds()) + 1
	cmd := &proc.Cmd{
		Path: argv0, Args: p.Command, Dir: dir, Env: env,
		Stdout:      []proc.Sink{proc.Capture(lim.Stdout)},
		Stderr:      []proc.Sink{proc.Capture(lim.Stderr)},
		StdoutLimit: lim.Stdout, StderrLimit: lim.Stderr,
		Timeout: lim.WallTime, StopSignal: syscall.SIGKILL, Grace: -1,
		Setsid: true,
		Rlimits: []proc.Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Cur: uint64(lim.OpenFiles), Max: uint64(lim.OpenFiles)},
			{Resource: unix.RLIMIT_FSIZE, Cur: uint64(lim.FileSize), Max: uint64(lim.FileSize)},
			{Resource: unix.RLIMIT_STACK, Cur: uint64(lim.Stack), Max: uint64(lim.Stack)},
			{Resource: unix.RLIMIT_CORE},
			{Resource: unix.RLIMIT_CPU, Cur: cpu, Max: cpu + 1},
		},
	}
	if len(p.Stdin) > 0 {
		cmd.Stdin = bytes.NewReader(p.Stdin)
	}
	// Combined: both streams in arrival order, under the stdout limit (a plain child
	// has no init to give it one pipe for both, so the order is as proc read it).
	cmd.Combined = p.Combined
	// Memory and process limits need a cgroup; without one (no privilege) the run
	// goes on with the rest, as the package doc says.
	cmd.Resources = &proc.Resources{Memory: lim.Memory, Pids: int64(lim.Processes)}
	pres, err := cmd.Run(ctx)
	if err != nil && errors.Is(err, proc.ErrNoCgroup) {
		cmd.Resources = nil
		pres, err = cmd.Run(ctx)
	}
	if pres == nil || pres.Status == proc.StatusStartError {
		return nil, fmt.Errorf("the program could not be started: %w", err)
	}
	f := sandbox.Captured(res, pres, lim)
	if p.Combined {
		res.Stdout, res.Stderr = string(pres.Combined), ""
		res.StdoutBytes, res.StderrBytes = pres.StdoutBytes+pres.StderrBytes, 0
		res.StdoutTruncated, res.StderrTruncated = pres.CombinedTruncated, false
	}
	res.WallTime = pres.Duration
	res.CPUTime, res.PeakMemory = pres.UserCPU+pres.SysCPU, pres.MaxRSS
	if u := pres.Usage; u != nil {
		res.CPUTime, res.PeakMemory = u.CPU, u.MemoryPeak
		f.OOMKilled = u.OOMKills > 0
	}
	p.Finish(res, f)
	return res, nil
}

// writeFiles writes the input files below dir, a directory made for this run: no
// name can leave it (Prepare validated them) and O_EXCL|O_NOFOLLOW refuse anything
// already there.
func writeFiles(dir string, files []sandbox.File) error {
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if f.Executable {
			mode = 0o755
		}
		fh, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
		if err != nil {
			return err
		}
		_, err = fh.Write(f.Content)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func lookPath(name, pathVar string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range filepath.SplitList(pathVar) {
		if p, err := exec.LookPath(filepath.Join(d, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", name, pathVar)
}

var _ sandbox.Doctor = (*Backend)(nil)

// Diagnose says what the host backend gives (no isolation, by design) and tries a run.
func (b *Backend) Diagnose(ctx context.Context) []sandbox.Check {
	checks := []sandbox.Check{{Name: "isolation", Optional: true,
		Detail: "none: programs run as children of runbox, with the host's files, network and users",
		Fix:    "use the native backend for code you do not trust"}}
	res, err := b.Run(ctx, sandbox.Spec{Command: []string{"/bin/true"}})
	trial := sandbox.Check{Name: "trial run"}
	switch {
	case err != nil:
		trial.Detail = err.Error()
	case res.Status != sandbox.StatusOK:
		trial.Detail = fmt.Sprintf("/bin/true ended with %s", res.Status)
	default:
		trial.OK, trial.Detail = true, fmt.Sprintf("/bin/true: ok in %v", res.WallTime.Round(10*time.Microsecond))
	}
	return append(checks, trial)
}
