// Package boxinit is pid 1 of every sandbox box: the runbox binary, re-executed in
// the box. It reads its Config, writes the input files, drops what the program must not
// have, forks the program, reaps every process of the box and reports a Status.
//
// It runs in two places:
//   - a native box (sandbox/native): the host re-executes /proc/self/exe in new
//     namespaces; the init builds the box's root, reads its Config from fd 3 and
//     reports on fd 4, while the program writes to the init's own stdout and stderr;
//   - a Docker container (sandbox/docker): the binary is the container's entrypoint,
//     the engine built the root; the Config comes on stdin, and the program's output
//     and the Status go out on stdout as frames (see frame.go), so that nothing the
//     program writes can pass for the init's report.
//
// It has few imports on purpose: Go initializes packages in dependency order, and the
// hook in this package's init function takes over the process before the rest of the
// binary's packages are initialized, which saves milliseconds per box.
package boxinit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/internal/seccomp"
)

// The box's init is this same binary, re-executed as pid 1 of the box's namespaces
// (the runc pattern): the host starts it, it reads its config, builds what the box
// lacks, drops everything it can, starts the program, reaps every process of the box,
// and reports how the program ended.
const (
	Arg0     = "runbox-sandbox-init"
	Env      = "RUNBOX_SANDBOX_INIT"
	ConfigFD = 3
	StatusFD = 4
	// ZygoteFD is where a warm template's init finds the socket its zygote serves.
	ZygoteFD = 5
	UID      = 1000 // the program's uid and gid inside a native box
	// Slots is how many uids from UID up a warm template's runs use, one per run in
	// progress, so that each run's RLIMIT_NPROC counts its own processes only.
	Slots = 64
	// ContainerEnv, set to "1", makes the binary a container's init when it runs
	// without arguments.
	ContainerEnv = "RUNBOX_CONTAINER_INIT"
	work         = "/work"
	hostname     = "runbox"
)

func init() {
	switch {
	case len(os.Args) == 1 && os.Args[0] == Arg0 && os.Getenv(Env) == "1":
		runInit()
	case len(os.Args) == 1 && os.Getenv(ContainerEnv) == "1":
		runContainer()
	}
}

// Config is what the host tells the init, as one JSON line, followed by the input
// files' contents in order, then the program's stdin.
type Config struct {
	Argv      []string `json:"argv"`
	Env       []string `json:"env"`
	Files     []File   `json:"files"`
	StdinSize int64    `json:"stdin_size,omitempty"` // the bytes after the files
	Combined  bool     `json:"combined,omitempty"`   // stderr goes to stdout (2>&1)
	Loopback  bool     `json:"loopback"`
	TmpSize   int64    `json:"tmp_size"`
	TmpInodes int      `json:"tmp_inodes"`
	Rlimits   []Rlimit `json:"rlimits"`
	Landlock  bool     `json:"landlock"`
	// Zygote, in a native box's config, makes the box a warm template: the init starts
	// this interpreter argv (python and its flags) as the zygote, which forks a
	// confined child per run (zygote.py), instead of a program.
	Zygote []string `json:"zygote,omitempty"`

	// In a container, the init itself enforces what the native host enforces from
	// outside: the program's uid (the container's tmpfs belongs to it), its time
	// limits, and the caps of its output streams.
	UID    int   `json:"uid,omitempty"`
	WallNS int64 `json:"wall_ns,omitempty"`
	CPUNS  int64 `json:"cpu_ns,omitempty"`
	Stdout int64 `json:"stdout,omitempty"`
	Stderr int64 `json:"stderr,omitempty"`

	contents [][]byte // the files' contents, in order, after the line
}

type File struct {
	Name       string `json:"name"`
	Size       int64  `json:"size"`
	Executable bool   `json:"executable,omitempty"`
}

type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// Status is the init's one report. Stage names the step that failed, with Error; a
// program that could not be started is "exec".
type Status struct {
	Stage    string `json:"stage,omitempty"`
	Error    string `json:"error,omitempty"`
	Started  bool   `json:"started"`
	Exited   bool   `json:"exited"`
	ExitCode int    `json:"exit_code"`
	Signal   int    `json:"signal"`
	// When the init had read its config, started the program, and saw the box empty
	// (Unix nanoseconds), for the host's debug log.
	ConfiguredNS int64 `json:"configured_ns,omitempty"`
	ProgramNS    int64 `json:"program_ns,omitempty"`
	EndedNS      int64 `json:"ended_ns,omitempty"`

	// A container's init also reports the limit it stopped the program for ("wall",
	// "cpu", "stdout", "stderr"), the CPU time of the program's processes, the
	// container's peak memory, the bytes each stream carried and the OOM kills.
	Limit       string `json:"limit,omitempty"`
	CPUNS       int64  `json:"cpu_ns,omitempty"`
	PeakMemory  int64  `json:"peak_memory,omitempty"`
	StdoutBytes int64  `json:"stdout_bytes,omitempty"`
	StderrBytes int64  `json:"stderr_bytes,omitempty"`
	// OOMKills counts the program's processes the kernel killed for memory, from the
	// cgroup (a second source beside the engine's OOMKilled).
	OOMKills int `json:"oom_kills,omitempty"`
}

func readConfig(f *os.File) (*Config, [][]byte, *os.File, error) {
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(line, &cfg); err != nil {
		return nil, nil, nil, fmt.Errorf("decode config: %w", err)
	}
	files := make([][]byte, len(cfg.Files))
	for i, in := range cfg.Files {
		files[i] = make([]byte, in.Size)
		if _, err := io.ReadFull(r, files[i]); err != nil {
			return nil, nil, nil, fmt.Errorf("read input file %s: %w", in.Name, err)
		}
	}
	stdin, err := os.Open(os.DevNull)
	if err != nil || cfg.StdinSize == 0 {
		return &cfg, files, stdin, err
	}
	stdin.Close()
	// Stdin is a memory file the program reads from the start: no pump in the init.
	fd, err := unix.MemfdCreate("stdin", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("stdin: %w", err)
	}
	stdin = os.NewFile(uintptr(fd), "stdin")
	if _, err := io.CopyN(stdin, r, cfg.StdinSize); err != nil {
		return nil, nil, nil, fmt.Errorf("read stdin: %w", err)
	}
	if _, err := stdin.Seek(0, io.SeekStart); err != nil {
		return nil, nil, nil, err
	}
	return &cfg, files, stdin, nil
}

// writeFiles writes the input files into the work directory, owned by uid. Nothing else runs in the
// box yet and the tmpfs is new, so no path can lead elsewhere; O_NOFOLLOW and O_EXCL
// keep it that way regardless.
func writeFiles(list []File, contents [][]byte, uid int) error {
	if err := os.Chown(work, uid, uid); err != nil {
		return err
	}
	for i, in := range list {
		dst := path.Join(work, in.Name)
		if !strings.HasPrefix(dst, work+"/") {
			return fmt.Errorf("input file %q leaves the work directory", in.Name)
		}
		if err := mkdirs(work, path.Dir(in.Name), uid); err != nil {
			return err
		}
		mode := uint32(0o644)
		if in.Executable {
			mode = 0o755
		}
		fd, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return fmt.Errorf("create %s: %w", in.Name, err)
		}
		f := os.NewFile(uintptr(fd), dst)
		_, err = f.Write(contents[i])
		if err == nil {
			err = f.Chown(uid, uid)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", in.Name, err)
		}
	}
	return nil
}

// mkdirs creates the directories of rel under base, owned by the box's user.
func mkdirs(base, rel string, uid int) error {
	if rel == "." || rel == "" {
		return nil
	}
	dir := base
	for _, part := range strings.Split(rel, "/") {
		dir = path.Join(dir, part)
		if err := unix.Mkdir(dir, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		if err := unix.Chown(dir, uid, uid); err != nil {
			return err
		}
	}
	return nil
}

// confine drops what the program must not have, on this thread, which forks it:
// no_new_privs, Landlock (when cfg asks, with rules), the capability bounding set (when
// dropCaps: a container's init lacks the right to, and its program never holds any)
// and seccomp (the filter on every thread of the init).
func confine(cfg *Config, rules []landlockRule, dropCaps bool) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if cfg.Landlock {
		if err := restrictFiles(rules, cfg.Loopback); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	for c := 0; dropCaps && c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := seccomp.Install(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}

// spawn forks the program with files as its stdin, stdout and stderr; it becomes
// uid in a new session, in the work directory.
func spawn(cfg *Config, files []*os.File, uid int) (*os.Process, error) {
	bin, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		return nil, err
	}
	return os.StartProcess(bin, cfg.Argv, &os.ProcAttr{
		Dir:   work,
		Env:   cfg.Env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}},
			Pdeathsig:  syscall.SIGKILL,
		},
	})
}

// lookPath finds a command in the box's PATH, as the program's environment has it.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in the box's PATH (%s)", name, pathVar)
}

// reap waits for every process of the box. When the program itself ends, what it left
// behind is killed (kill(-1) from pid 1 reaches the whole namespace), so its status
// is reported only once the box is empty.
func reap(child *os.Process) Status {
	st := Status{Started: true}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: nothing left
			return st
		}
		if pid == child.Pid {
			if ws.Signaled() {
				st.Signal = int(ws.Signal())
			} else {
				st.Exited, st.ExitCode = true, ws.ExitStatus()
			}
			_ = unix.Kill(-1, unix.SIGKILL)
		}
	}
}

// access is what Landlock lets the program do below a path.
type access int

const (
	listOnly access = iota // list the directory
	readOnly               // read and execute
	procFS                 // read, and write (/proc/self/…)
	device                 // read and write an existing device node
	writable               // everything but making device nodes
)

type landlockRule struct {
	path   string
	access access
}

// landlockPlan is a Landlock ruleset worked out for this kernel: the ruleset's
// attribute (Size bytes of it are the kernel's) and each path's allowed rights.
type landlockPlan struct {
	FS     uint64        `json:"fs"`
	Net    uint64        `json:"net"` // left out where the run has a loopback
	Scoped uint64        `json:"scoped"`
	Size   uintptr       `json:"size"`
	Rules  []plannedRule `json:"rules"`
}

type plannedRule struct {
	Path   string
	Access uint64
}

// MarshalJSON writes a rule as [path, rights], the zygote's form.
func (r plannedRule) MarshalJSON() ([]byte, error) { return json.Marshal([]any{r.Path, r.Access}) }

// planLandlock works out the ruleset of rules for this kernel's ABI: no TCP (the
// zygote drops that for a run with a loopback), no abstract unix sockets or signals
// reaching outside the domain. Rights the kernel's ABI lacks are left out (best
// effort).
func planLandlock(rules []landlockRule) (landlockPlan, error) {
	abi, err := LandlockABI()
	if err != nil {
		return landlockPlan{}, err
	}
	const (
		read = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
		all  = read | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
			unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
			unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	)
	handled := uint64(all)
	if abi >= 2 {
		handled |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		handled |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		handled |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	var attr unix.LandlockRulesetAttr
	plan := landlockPlan{FS: handled, Size: unsafe.Offsetof(attr.Quiet_access_fs)}
	if abi >= 4 {
		plan.Net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if abi >= 6 {
		plan.Scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	devRW := uint64(unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE)
	if abi >= 3 {
		devRW |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		devRW |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	rights := map[access]uint64{
		listOnly: unix.LANDLOCK_ACCESS_FS_READ_DIR,
		readOnly: read,
		procFS:   read | unix.LANDLOCK_ACCESS_FS_WRITE_FILE,
		device:   devRW,
		writable: handled &^ (unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK),
	}
	for _, r := range rules {
		plan.Rules = append(plan.Rules, plannedRule{r.path, rights[r.access] & handled})
	}
	return plan, nil
}

// restrictFiles confines this thread, and so the program, with Landlock: rules say
// what it may do where (paths that do not exist are skipped); see planLandlock.
func restrictFiles(rules []landlockRule, loopback bool) error {
	plan, err := planLandlock(rules)
	if err != nil {
		return err
	}
	attr := unix.LandlockRulesetAttr{Handled_access_fs: plan.FS, Scoped: plan.Scoped}
	if !loopback {
		attr.Handled_access_net = plan.Net
	}
	// Only the fields up to Scoped: a kernel rejects a larger struct it does not know.
	r0, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), plan.Size, 0)
	if errno != 0 {
		return fmt.Errorf("create ruleset: %w", errno)
	}
	fd := int(r0)
	defer unix.Close(fd)
	for _, r := range plan.Rules {
		pfd, err := unix.Open(r.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		} else if err != nil {
			return err
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: r.Access, Parent_fd: int32(pfd)}
		_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(fd), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
		unix.Close(pfd)
		if errno != 0 {
			return fmt.Errorf("rule for %s: %w", r.Path, errno)
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(fd), 0, 0); errno != 0 {
		return fmt.Errorf("restrict: %w", errno)
	}
	return nil
}

// LandlockABI returns the kernel's Landlock ABI version (an error when it has none).
func LandlockABI() (int, error) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0, errno
	}
	return int(v), nil
}
