package boxinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// newRootAt is where a native box's root is built before pivot_root.
const newRootAt = "/tmp"

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
	if len(cfg.Zygote) > 0 {
		st, err := runZygote(cfg)
		if err != nil {
			fail("zygote", err)
		}
		report(st)
		os.Exit(0)
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
	if err := writeFiles(cfg.Files, files, UID); err != nil {
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

// writeEtc writes the box's minimal /etc: who the users are, names that resolve
// without a network, and runbox's bootstrap of JavaScript ready runs.
func writeEtc(root, hostname string) error {
	etc := root + "/etc"
	// The program's user: UID, or one of the slots of a warm template's runs.
	var users, groups strings.Builder
	for id := UID; id < UID+Slots; id++ {
		fmt.Fprintf(&users, "sandbox:x:%d:%d:sandbox:/work:/bin/sh\n", id, id)
		fmt.Fprintf(&groups, "sandbox:x:%d:\n", id)
	}
	if err := os.MkdirAll(filepath.Join(etc, "runbox"), 0o755); err != nil {
		return err
	}
	// Every box has the bootstrap of JavaScript ready runs, not only a warm
	// template's: what a run sees of its root is the same either way.
	if err := os.WriteFile(root+NodeReady, []byte(nodeReadySource), 0o644); err != nil {
		return err
	}
	for name, content := range map[string]string{
		"passwd":        "root:x:0:0:root:/root:/bin/sh\n" + users.String() + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":         "root:x:0:\n" + groups.String() + "nogroup:x:65534:\n",
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

// nativeRules are what a native box's program may do where, for Landlock.
func nativeRules() []landlockRule {
	rules := []landlockRule{
		{"/", listOnly}, {"/usr", readOnly}, {"/etc", readOnly}, {"/proc", procFS}, {"/dev", readOnly},
		{work, writable}, {"/tmp", writable}, {"/dev/shm", writable},
	}
	for _, p := range readOnlyBinds {
		rules = append(rules, landlockRule{p, readOnly})
	}
	for _, d := range devices {
		rules = append(rules, landlockRule{"/dev/" + d, device})
	}
	return rules
}

// startProgram confines this thread and forks the program as the box's user, writing
// to the init's own stdout and stderr.
func startProgram(cfg *Config, stdin *os.File) (*os.Process, error) {
	if err := confine(cfg, nativeRules(), true); err != nil {
		return nil, err
	}
	errOut := os.Stderr
	if cfg.Combined {
		errOut = os.Stdout
	}
	return spawn(cfg, []*os.File{stdin, os.Stdout, errOut}, UID)
}
