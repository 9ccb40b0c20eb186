// Package boxinit is pid 1 of a native sandbox box: the runbox binary re-executed in
// the box's new namespaces (the runc pattern). It reads its Config from fd 3, builds
// the box's file system, drops privileges, forks the program, reaps every process of
// the box and reports a Status on fd 4.
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
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/internal/seccomp"
)

// The box's init is this same binary, re-executed as pid 1 of the box's namespaces
// (the runc pattern): the host starts it, it reads its config from fd 3, builds the
// box's file system, drops everything it can, starts the program, reaps every process
// of the box, and reports how the program ended on fd 4.
const (
	Arg0      = "runbox-sandbox-init"
	Env       = "RUNBOX_SANDBOX_INIT"
	ConfigFD  = 3
	StatusFD  = 4
	UID       = 1000 // the program's uid and gid inside the box
	newRootAt = "/tmp"
	hostname  = "runbox"
)

func init() {
	if len(os.Args) == 1 && os.Args[0] == Arg0 && os.Getenv(Env) == "1" {
		runInit()
	}
}

// Config is what the host tells the init, as one JSON line on fd 3, followed by
// the input files' contents in order.
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

// Status is the init's one report on fd 4. Stage names the step that failed,
// with Error; a program that could not be started is "exec".
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
}

func runInit() {
	// Everything happens on this thread: the Landlock domain, the capability bounding
	// set and no_new_privs are per thread, and the program is forked from it.
	runtime.LockOSThread()
	// Nothing but stdin, stdout and stderr may reach the program: the status pipe
	// would let it forge its verdict, and whatever the host's process inherited from
	// its own parent is none of the box's business.
	if err := unix.CloseRange(StatusFD, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		for fd := StatusFD; fd < 1024; fd++ {
			unix.CloseOnExec(fd)
		}
	}
	status := os.NewFile(StatusFD, "status")
	report := func(st Status) {
		b, _ := json.Marshal(st)
		_, _ = status.Write(append(b, '\n'))
	}
	fail := func(stage string, err error) {
		report(Status{Stage: stage, Error: err.Error()})
		os.Exit(1)
	}
	// The box is built before the config is read, so that a box can wait ready for
	// its run (the host keeps a few warm).
	if stage, err := prepareRoot(); err != nil {
		fail(stage, err)
	}
	cfg, files, stdin, err := readConfig(os.NewFile(ConfigFD, "config"))
	configured := time.Now().UnixNano()
	if err != nil {
		fail("config", err)
	}
	if stage, err := configure(cfg, files); err != nil {
		fail(stage, err)
	}
	child, err := startProgram(cfg, stdin)
	if err != nil {
		fail("exec", err)
	}
	program := time.Now().UnixNano()
	st := reap(child)
	st.ConfiguredNS, st.ProgramNS, st.EndedNS = configured, program, time.Now().UnixNano()
	report(st)
	os.Exit(0)
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

// readOnlyBinds are the host directories the box sees read-only: what interpreters
// need. A path that is a symlink on the host (/bin → usr/bin) becomes the same symlink.
var readOnlyBinds = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives"}

// readOnlyFiles are single host files bound read-only into the box's /etc.
var readOnlyFiles = []string{"/etc/ld.so.cache", "/etc/localtime"}

// devices are bound from the host's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom"}

const nosuid = unix.MS_NOSUID | unix.MS_NODEV

// prepareRoot builds what every box has: a fresh root with the read-only system
// directories, /etc, /dev and /proc, the mount points of the writable file systems,
// and the host name. It returns the name of the step that failed.
func prepareRoot() (string, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "mount", fmt.Errorf("make mounts private: %w", err)
	}
	root := newRootAt
	if err := unix.Mount("runbox", root, "tmpfs", nosuid, "size=1m,nr_inodes=512,mode=755"); err != nil {
		return "mount", fmt.Errorf("root tmpfs: %w", err)
	}
	for _, p := range readOnlyBinds {
		if err := bindReadOnly(root, p, true); err != nil {
			return "mount", err
		}
	}
	if err := writeEtc(root, hostname); err != nil {
		return "etc", err
	}
	for _, p := range readOnlyFiles {
		if err := bindReadOnly(root, p, false); err != nil {
			return "mount", err
		}
	}
	for _, d := range []string{"/work", "/tmp", "/dev", "/proc", "/var"} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			return "mount", err
		}
	}
	if err := unix.Mount("tmpfs", root+"/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,nr_inodes=64,mode=755"); err != nil {
		return "mount", fmt.Errorf("tmpfs /dev: %w", err)
	}
	if err := os.Mkdir(root+"/dev/shm", 0o755); err != nil {
		return "mount", err
	}
	for _, d := range devices {
		if err := bindDevice(root, "/dev/"+d); err != nil {
			return "mount", err
		}
	}
	for name, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2", "/var/tmp": "/tmp"} {
		if err := os.Symlink(target, root+name); err != nil {
			return "mount", err
		}
	}
	if err := unix.Mount("proc", root+"/proc", "proc", nosuid|unix.MS_NOEXEC, ""); err != nil {
		return "mount", fmt.Errorf("mount /proc: %w", err)
	}
	if err := pivot(root); err != nil {
		return "pivot_root", err
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|nosuid, ""); err != nil {
		return "mount", fmt.Errorf("remount / read-only: %w", err)
	}
	if err := unix.Mount("", "/dev", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return "mount", fmt.Errorf("remount /dev read-only: %w", err)
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return "hostname", err
	}
	return "", nil
}

// configure makes what depends on the run: the writable file systems with their
// caps, the input files, the network and the rlimits.
func configure(cfg *Config, files [][]byte) (string, error) {
	for _, t := range []struct {
		dir  string
		mode os.FileMode
	}{{"/work", 0o755}, {"/tmp", 0o1777}, {"/dev/shm", 0o1777}} {
		opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=%o", cfg.TmpSize, cfg.TmpInodes, t.mode)
		if err := unix.Mount("tmpfs", t.dir, "tmpfs", nosuid, opts); err != nil {
			return "mount", fmt.Errorf("tmpfs %s: %w", t.dir, err)
		}
	}
	if err := writeFiles(cfg.Files, files); err != nil {
		return "files", err
	}
	if cfg.Loopback {
		if err := loopbackUp(); err != nil {
			return "network", err
		}
	}
	for _, r := range cfg.Rlimits {
		if err := unix.Setrlimit(r.Resource, &unix.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return "rlimit", fmt.Errorf("rlimit %d: %w", r.Resource, err)
		}
	}
	return "", nil
}

// bindReadOnly binds host path p at the same place under root, read-only. A path the
// host lacks is skipped; a host symlink is recreated as a symlink.
func bindReadOnly(root, p string, dir bool) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	dst := root + p
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	if dir {
		err = os.Mkdir(dst, 0o755)
	} else {
		err = os.WriteFile(dst, nil, 0o644)
	}
	if err != nil {
		return err
	}
	if err := unix.Mount(p, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", p, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", p, err)
	}
	return nil
}

func bindDevice(root, dev string) error {
	if err := os.WriteFile(root+dev, nil, 0o666); err != nil {
		return err
	}
	if err := unix.Mount(dev, root+dev, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dev, err)
	}
	return unix.Mount("", root+dev, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}

// writeEtc writes the box's minimal /etc: who the users are, and names that resolve
// without a network.
func writeEtc(root, hostname string) error {
	etc := root + "/etc"
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	for name, content := range map[string]string{
		"passwd":        fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nsandbox:x:%d:%d:sandbox:/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", UID, UID),
		"group":         fmt.Sprintf("root:x:0:\nsandbox:x:%d:\nnogroup:x:65534:\n", UID),
		"hosts":         "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"hostname":      hostname + "\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
		"resolv.conf":   "",
	} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// pivot makes root the root of this mount namespace and detaches the host's tree.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on the new one; unmounting "." then
	// detaches the old one, with no directory for it needed.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	return unix.Chdir("/")
}

// writeFiles writes the input files into the work directory. Nothing else runs in the
// box yet and the tmpfs is new, so no path can lead elsewhere; O_NOFOLLOW and O_EXCL
// keep it that way regardless.
func writeFiles(list []File, contents [][]byte) error {
	const work = "/work"
	if err := os.Chown(work, UID, UID); err != nil {
		return err
	}
	for i, in := range list {
		dst := path.Join(work, in.Name)
		if !strings.HasPrefix(dst, work+"/") {
			return fmt.Errorf("input file %q leaves the work directory", in.Name)
		}
		if err := mkdirs(work, path.Dir(in.Name)); err != nil {
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
			err = f.Chown(UID, UID)
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
func mkdirs(base, rel string) error {
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
		if err := unix.Chown(dir, UID, UID); err != nil {
			return err
		}
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// startProgram drops what the program must not have and starts it: Landlock, the
// capability bounding set, no_new_privs and seccomp on this thread (the filter on every
// thread of the init), then a fork that becomes the box's user in a new session.
func startProgram(cfg *Config, stdin *os.File) (*os.Process, error) {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("no_new_privs: %w", err)
	}
	if cfg.Landlock {
		if err := restrictFiles(cfg.Loopback); err != nil {
			return nil, fmt.Errorf("landlock: %w", err)
		}
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := seccomp.Install(); err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	bin, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		return nil, err
	}
	errOut := os.Stderr
	if cfg.Combined {
		errOut = os.Stdout
	}
	p, err := os.StartProcess(bin, cfg.Argv, &os.ProcAttr{
		Dir:   "/work",
		Env:   cfg.Env,
		Files: []*os.File{stdin, os.Stdout, errOut},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: UID, Gid: UID, Groups: []uint32{}},
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	if err != nil {
		return nil, err
	}
	return p, nil
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

// restrictFiles confines this thread, and so the program, with Landlock: read and
// execute below the system directories, write only to the work directory, /tmp and
// /dev/shm; no TCP without a loopback; no abstract unix sockets or signals reaching
// outside the box. Rights the kernel's ABI lacks are left out (best effort).
func restrictFiles(loopback bool) error {
	abi, err := LandlockABI()
	if err != nil {
		return err
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
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	if abi >= 4 && !loopback {
		attr.Handled_access_net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if abi >= 6 {
		attr.Scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	// Only the fields up to Scoped: a kernel rejects a larger struct it does not know.
	r0, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Offsetof(attr.Quiet_access_fs), 0)
	if errno != 0 {
		return fmt.Errorf("create ruleset: %w", errno)
	}
	fd := int(r0)
	defer unix.Close(fd)
	writable := handled &^ (unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK)
	devRW := uint64(unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE)
	if abi >= 3 {
		devRW |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		devRW |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	rules := []struct {
		path   string
		access uint64
	}{
		{"/", unix.LANDLOCK_ACCESS_FS_READ_DIR}, {"/usr", read}, {"/etc", read}, {"/proc", read | unix.LANDLOCK_ACCESS_FS_WRITE_FILE}, {"/dev", read},
		{"/work", writable}, {"/tmp", writable}, {"/dev/shm", writable},
	}
	for _, p := range readOnlyBinds {
		rules = append(rules, struct {
			path   string
			access uint64
		}{p, read})
	}
	for _, d := range devices {
		rules = append(rules, struct {
			path   string
			access uint64
		}{"/dev/" + d, devRW})
	}
	for _, r := range rules {
		pfd, err := unix.Open(r.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		} else if err != nil {
			return err
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: r.access & handled, Parent_fd: int32(pfd)}
		_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(fd), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
		unix.Close(pfd)
		if errno != 0 {
			return fmt.Errorf("rule for %s: %w", r.path, errno)
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
