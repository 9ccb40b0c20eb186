package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

const (
	// initDir is where the init volume is mounted in every container, and initPath the
	// init in it.
	initDir  = "/.runbox"
	initPath = initDir + "/init"
	// initPids is how many processes and threads the init itself may have, over the
	// program's limit (a Go process: a handful of threads).
	initPids = 32
	// backstop is how long after the wall time limit the engine kills a container
	// whose init has not reported: the init enforces the limit itself, first.
	backstop = 2 * time.Second
	// cleanupTimeout bounds the engine calls that tear a run down, which must happen
	// even when the run's context has ended.
	cleanupTimeout = 30 * time.Second
	// deadlineSlack is added to a run's wall time limit for its deadline label: the
	// janitor removes it past that.
	deadlineSlack = time.Minute
	// runUIDBase and runUIDSpan are the host uids programs run as, one per container,
	// away from the native backend's range.
	runUIDBase = 2_000_000_000
	runUIDSpan = 100_000_000
	// maxInitStderr bounds what the host keeps of the init's own stderr (a crash).
	maxInitStderr = 16 << 10
)

// Labels on every container runbox makes.
const (
	labelOwner    = "io.runbox.owner"    // the process that made it (ownerID)
	labelInstance = "io.runbox.instance" // the backend value
	labelDeadline = "io.runbox.deadline" // Unix seconds after which it is garbage
	labelRun      = "io.runbox.run"      // the run id; "warm" until one is handed it
)

// box is a container made for one run.
type box struct {
	id   string
	uid  int
	warm bool
	// Settings the container was made with, which a run must fit.
	limits  sandbox.Limits
	image   string
	created time.Time
}

// newBox creates a container of image for a run with limits lim. A warm box (started
// by the pool) has the maximum ulimits, which the init lowers to the run's, and
// memory and processes the pool updates when a run asks for others.
func (b *Backend) newBox(ctx context.Context, eng *engine, image string, lim sandbox.Limits, runID string, warm bool) (*box, error) {
	bx := &box{uid: runUIDBase + rand.IntN(runUIDSpan), warm: warm, limits: lim, image: image, created: time.Now()}
	deadline := time.Now().Add(lim.WallTime + deadlineSlack)
	nofile, fsize := int64(lim.OpenFiles), lim.FileSize
	if warm {
		deadline = time.Now().Add(warmMaxIdle + sandbox.MaxWallTime + deadlineSlack)
		nofile, fsize = sandbox.MaxOpenFiles, sandbox.MaxFileSize
		runID = "warm"
	}
	tmpfs := func(mode string) string {
		return fmt.Sprintf("rw,exec,nosuid,nodev,size=%d,nr_inodes=%d,uid=%d,gid=%d,mode=%s", lim.TmpSize, lim.TmpInodes, bx.uid, bx.uid, mode)
	}
	pids := int64(lim.Processes) + initPids
	cfg := &container.Config{
		Image:        image,
		Entrypoint:   []string{initPath},
		Cmd:          []string{},
		Env:          []string{boxinit.ContainerEnv + "=1", "GOMAXPROCS=2", "GOGC=off"},
		User:         "0:0",
		WorkingDir:   "/",
		Hostname:     "runbox",
		OpenStdin:    true,
		StdinOnce:    true,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Labels: map[string]string{
			labelOwner: b.owner, labelInstance: b.instance, labelRun: runID,
			labelDeadline: strconv.FormatInt(deadline.Unix(), 10),
		},
	}
	host := &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		// The init starts the program as another user and kills what it leaves; the
		// program, not root and under no_new_privs, holds none of these.
		CapDrop:      []string{"ALL"},
		CapAdd:       []string{"SETUID", "SETGID", "KILL"},
		SecurityOpt:  []string{"no-new-privileges"},
		IpcMode:      container.IPCModePrivate,
		CgroupnsMode: container.CgroupnsModePrivate,
		OomScoreAdj:  500, // under memory pressure on the host, a sandbox goes first
		LogConfig:    container.LogConfig{Type: "none"},
		Tmpfs: map[string]string{
			"/work":    tmpfs("0755"),
			"/tmp":     tmpfs("1777"),
			"/dev/shm": tmpfs("1777"),
		},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: eng.initVolume, Target: initDir, ReadOnly: true}},
		Resources: container.Resources{
			Memory:     lim.Memory,
			MemorySwap: lim.Memory,
			PidsLimit:  &pids,
			NanoCPUs:   b.nanoCPUs(eng),
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: nofile, Hard: nofile},
				{Name: "fsize", Soft: fsize, Hard: fsize},
				{Name: "core", Soft: 0, Hard: 0},
			},
		},
	}
	name := "runbox-" + runID + "-" + sandbox.NewRunID()[:6]
	created, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: name})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			b.forgetImage(image)
			return nil, missingImage(image, err)
		}
		return nil, fmt.Errorf("docker: create the container: %w", err)
	}
	bx.id = created.ID
	return bx, nil
}

func (b *Backend) nanoCPUs(eng *engine) int64 {
	cpus := b.cfg.CPUs
	if cpus <= 0 {
		cpus = float64(eng.ncpu)
	}
	return int64(cpus * 1e9)
}

// remove kills and removes the container.
func (b *Backend) remove(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_, err := b.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove container %.12s: %w", id, err)
	}
	return nil
}

// kill sends signal to the container's init through the engine.
func (b *Backend) kill(id, signal string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if _, err := b.cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: signal}); err != nil {
		b.log.Debug("docker: kill", "container", id, "err", err)
	}
}

// run runs p in a container of image, warm or new, and removes it.
func (b *Backend) run(ctx context.Context, eng *engine, p *sandbox.Prepared, res *sandbox.Result, image string, out func(string, []byte)) (*sandbox.Result, error) {
	lim := p.Limits
	// The engine calls that set the run up finish even if ctx ends meanwhile: the run
	// then starts and is stopped at once, and reports a timeout like any other.
	setup := context.WithoutCancel(ctx)
	bx, err := b.warm.take(setup, eng, image, lim)
	if err != nil {
		return nil, err
	}
	if bx == nil {
		if bx, err = b.newBox(setup, eng, image, lim, p.RunID, false); err != nil {
			return nil, err
		}
	}
	defer func() {
		if rerr := b.remove(bx.id); rerr != nil {
			b.log.Warn("docker: container left for the janitor", "run", p.RunID, "err", rerr)
			return
		}
		b.warm.removed(bx.id)
	}()
	b.log.Debug("docker: run", "run", p.RunID, "container", bx.id[:12], "warm", bx.warm)
	return b.runIn(ctx, p, res, bx, out)
}

// runIn attaches to bx, starts it unless it is warm (started already), sends the
// config and reads the frames until the init reports or the container ends.
func (b *Backend) runIn(ctx context.Context, p *sandbox.Prepared, res *sandbox.Result, bx *box, tap func(string, []byte)) (*sandbox.Result, error) {
	lim := p.Limits
	started := time.Now()
	setup := context.WithoutCancel(ctx)
	att, err := b.cli.ContainerAttach(setup, bx.id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, fmt.Errorf("docker: attach: %w", err)
	}
	defer att.Close()
	if !bx.warm {
		if _, err := b.cli.ContainerStart(setup, bx.id, client.ContainerStartOptions{}); err != nil {
			return nil, b.startError(p, bx, err)
		}
	}

	// Our own clock: the init enforces the wall limit and reports; the engine kills a
	// container that did not, or whose caller gave up.
	var killedMu sync.Mutex
	killed, finished := "", false
	var timer *time.Timer
	// killWith signals the container unless the run is over; a SIGTERM (the caller
	// gave up: the init stops the program and reports, usage and all) brings the
	// engine's SIGKILL closer.
	killWith := func(why, signal string) {
		killedMu.Lock()
		defer killedMu.Unlock()
		if finished {
			return
		}
		if killed == "" || killed == "context" {
			killed = why
		}
		if signal == "SIGTERM" {
			timer.Reset(backstop)
		}
		b.kill(bx.id, signal)
	}
	killedMu.Lock()
	timer = time.AfterFunc(lim.WallTime+backstop, func() { killWith("backstop", "SIGKILL") })
	killedMu.Unlock()
	readDone := make(chan struct{})
	defer func() {
		killedMu.Lock()
		finished = true
		timer.Stop()
		killedMu.Unlock()
		close(readDone)
	}()
	go func() {
		select {
		case <-ctx.Done():
			killWith("context", "SIGTERM")
		case <-readDone:
		}
	}()

	writeErr := make(chan error, 1)
	go func() {
		err := initConfig(p, bx.uid).Write(att.Conn, p.Stdin)
		if cerr := att.CloseWrite(); err == nil {
			err = cerr
		}
		writeErr <- err
	}()

	out := newOutput(lim, tap)
	st, readErr := readFrames(att.Reader, out)
	elapsed := time.Since(started)
	werr := <-writeErr

	waitCtx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	insp, ierr := b.waitExit(waitCtx, bx.id)
	killedMu.Lock()
	why := killed
	killedMu.Unlock()

	out.fill(res, st)
	res.WallTime = elapsed
	if st != nil && st.EndedNS > st.ProgramNS && st.ProgramNS > 0 {
		res.WallTime = time.Duration(st.EndedNS - st.ProgramNS)
		res.CPUTime, res.PeakMemory = time.Duration(st.CPUNS), st.PeakMemory
	} else if st != nil {
		res.PeakMemory = st.PeakMemory // stopped before the program started: the box's
	}
	if ierr != nil {
		return nil, ierr
	}
	oom := (insp.State != nil && insp.State.OOMKilled) || (st != nil && st.OOMKills > 0)
	f := sandbox.Facts{OOMKilled: oom}
	switch {
	case st != nil && st.Stage != "":
		if oom {
			f.Signal = syscall.SIGKILL // the kernel killed the init as it set up
			break
		}
		return nil, b.setupError(p, bx, st)
	case st != nil && st.Started:
		f.Exited, f.ExitCode, f.Signal, f.Limit = st.Exited, st.ExitCode, syscall.Signal(st.Signal), st.Limit
		if why == "context" && f.Limit == "" {
			f.Limit = api.LimitWall
		}
	case st != nil && st.Limit != "":
		// Stopped (SIGTERM) before the program was started.
		f.Signal, f.Limit = syscall.SIGKILL, st.Limit
	case why != "":
		// We killed the container before the init reported: the caller's context
		// ended, or the init did not enforce the wall limit in time.
		f.Signal, f.Limit = syscall.SIGKILL, api.LimitWall
	case oom:
		f.Signal = syscall.SIGKILL
	default:
		code := -1
		if insp.State != nil {
			code = insp.State.ExitCode
		}
		return nil, fmt.Errorf("docker: the container's init ended (exit %d) without a report (%v, %v); its stderr: %q",
			code, readErr, werr, out.initStderr.String())
	}
	p.Finish(res, f)
	return res, nil
}

// waitExit waits until the container stops and inspects it.
func (b *Backend) waitExit(ctx context.Context, id string) (container.InspectResponse, error) {
	w := b.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
	case err := <-w.Error:
		if !cerrdefs.IsNotFound(err) {
			return container.InspectResponse{}, fmt.Errorf("docker: wait for the container: %w", err)
		}
	}
	insp, err := b.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("docker: inspect the container: %w", err)
	}
	return insp.Container, nil
}

// startError explains a container that would not start.
func (b *Backend) startError(p *sandbox.Prepared, bx *box, err error) error {
	msg := err.Error()
	if strings.Contains(msg, initPath) || strings.Contains(msg, "exec format error") {
		return fmt.Errorf("docker: runbox's init could not start in image %s (%v): the image needs a Linux root of this machine's architecture%s",
			bx.image, err, staticHint())
	}
	return fmt.Errorf("docker: start the container: %w", err)
}

// setupError explains an init that could not set the run up.
func (b *Backend) setupError(p *sandbox.Prepared, bx *box, st *boxinit.Status) error {
	if st.Stage == "exec" {
		if l := p.Language; l != nil {
			return fmt.Errorf("docker: the %s interpreter %s could not be started in image %s (%s): choose an image that has it (--image %s=IMAGE), or build the default with scripts/docker-images.sh",
				l.Name, path.Base(l.Interpreter), bx.image, st.Error, l.Name)
		}
		return fmt.Errorf("docker: the program could not be started in image %s: %s", bx.image, st.Error)
	}
	return fmt.Errorf("docker: container setup failed at %s: %s", st.Stage, st.Error)
}

func missingImage(image string, err error) error {
	return fmt.Errorf("docker: image %s is not in the engine (%v): build the default with scripts/docker-images.sh, pull it (--pull), or choose another (--image LANG=IMAGE)",
		image, err)
}

// initConfig is what the container's init is told: the program (its interpreter by
// name, as the image's PATH has it) and its environment, the files, the rlimits, the
// program's uid, the time limits and the output caps.
func initConfig(p *sandbox.Prepared, uid int) *boxinit.Config {
	lim := p.Limits
	argv := p.Command
	if p.Language != nil {
		argv = append([]string{path.Base(argv[0])}, argv[1:]...)
	}
	cfg := boxinit.NewConfig(argv, p.Env, lim)
	cfg.Combined = p.Combined
	cfg.Landlock = true // the init drops it where the kernel or the engine's seccomp profile refuse it
	cfg.UID, cfg.WallNS, cfg.CPUNS = uid, int64(lim.WallTime), int64(lim.CPUTime)
	cfg.Stdout, cfg.Stderr = lim.Stdout, lim.Stderr
	for _, f := range p.Files {
		cfg.AddFile(f.Name, f.Content, f.Executable)
	}
	return cfg
}

// output collects what the frames carry, within the run's caps: the host's memory
// stays bounded whatever the container sends.
type output struct {
	stdout, stderr       cappedBuffer
	initStderr           cappedBuffer // the init's own stderr: a crash report
	stdoutTap, stderrTap *sandbox.Tap
}

func newOutput(lim sandbox.Limits, tap func(string, []byte)) *output {
	o := &output{stdout: cappedBuffer{limit: lim.Stdout}, stderr: cappedBuffer{limit: lim.Stderr},
		initStderr: cappedBuffer{limit: maxInitStderr}, stdoutTap: sandbox.NewTap("stdout"), stderrTap: sandbox.NewTap("stderr")}
	o.stdoutTap.Set(tap, lim.Stdout)
	o.stderrTap.Set(tap, lim.Stderr)
	return o
}

// fill sets res's streams; the init's counts, when it reported, are the program's
// whole output (it stops forwarding past the cap).
func (o *output) fill(res *sandbox.Result, st *boxinit.Status) {
	res.Stdout, res.Stderr = o.stdout.String(), o.stderr.String()
	res.StdoutBytes, res.StderrBytes = o.stdout.total, o.stderr.total
	if st != nil && st.Started {
		res.StdoutBytes, res.StderrBytes = max(st.StdoutBytes, o.stdout.total), max(st.StderrBytes, o.stderr.total)
	}
	res.StdoutTruncated = res.StdoutBytes > o.stdout.limit
	res.StderrTruncated = res.StderrBytes > o.stderr.limit
}

// cappedBuffer keeps the first limit bytes written and counts them all.
type cappedBuffer struct {
	buf   []byte
	limit int64
	total int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if room := c.limit - int64(len(c.buf)); room > 0 {
		c.buf = append(c.buf, p[:min(int64(len(p)), room)]...)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string { return string(c.buf) }

// readFrames demultiplexes the attach stream (the engine's stdout and stderr framing)
// and reads the init's frames from its stdout until the status frame or the end. It
// returns the status, nil when none came.
func readFrames(r io.Reader, out *output) (*boxinit.Status, error) {
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, &out.initStderr, r)
		pw.CloseWithError(err)
	}()
	// The demultiplexer ends with the attach stream, which the caller closes.
	defer pr.CloseWithError(errors.New("frames read"))
	fr := boxinit.NewFrameReader(pr)
	for {
		typ, payload, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return nil, err
		}
		switch typ {
		case boxinit.FrameStdout:
			out.stdout.Write(payload)
			out.stdoutTap.Write(payload)
		case boxinit.FrameStderr:
			out.stderr.Write(payload)
			out.stderrTap.Write(payload)
		case boxinit.FrameStatus:
			var st boxinit.Status
			if err := json.Unmarshal(payload, &st); err != nil {
				return nil, fmt.Errorf("decode the init's status: %w", err)
			}
			return &st, nil
		}
	}
}
