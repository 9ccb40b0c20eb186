package boxinit

import (
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/internal/seccomp"
)

// zygoteSource is the zygote: a Python fork server that makes each run's namespaces,
// mounts and confinement in a forked child (see its header).
//
//go:embed zygote.py
var zygoteSource string

// NodeReady is where every native box has the bootstrap of a JavaScript ready run
// (node-ready.js): node preloads it to wait for the run's config and write its files
// before node runs the run's file as its main module.
const NodeReady = "/etc/runbox/node-ready.js"

//go:embed node-ready.js
var nodeReadySource string

// zygoteSettings is the policy the Go side works out and the zygote applies to each
// run's program: nothing in zygote.py decides what a run may do.
type zygoteSettings struct {
	// NR are the system call numbers of this architecture the zygote calls by number.
	NR map[string]int `json:"nr"`
	// Seccomp is runbox's filter, struct sock_filter after struct sock_filter.
	Seccomp []byte `json:"seccomp"`
	// Landlock is the ruleset of a run (nil: the kernel has none).
	Landlock *landlockPlan `json:"landlock,omitempty"`
	// CapLast is the highest capability number the kernel knows.
	CapLast int `json:"cap_last"`
	// Python is the argv prefix the zygote itself was started with: a run whose
	// command is that prefix and a file runs in the forked interpreter.
	Python []string `json:"python"`
	// NetNS gives each run a network namespace of its own. Without Landlock's scoping
	// of abstract unix sockets (ABI 6), runs sharing the template's network namespace
	// could reach each other through one.
	NetNS bool `json:"netns"`
}

func newZygoteSettings(cfg *Config) (*zygoteSettings, error) {
	prog, err := seccomp.Program()
	if err != nil {
		return nil, err
	}
	filter := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		filter = binary.NativeEndian.AppendUint16(filter, ins.Code)
		filter = append(filter, ins.Jt, ins.Jf)
		filter = binary.NativeEndian.AppendUint32(filter, ins.K)
	}
	s := &zygoteSettings{
		NR: map[string]int{
			"clone":                   unix.SYS_CLONE,
			"seccomp":                 unix.SYS_SECCOMP,
			"landlock_create_ruleset": unix.SYS_LANDLOCK_CREATE_RULESET,
			"landlock_add_rule":       unix.SYS_LANDLOCK_ADD_RULE,
			"landlock_restrict_self":  unix.SYS_LANDLOCK_RESTRICT_SELF,
		},
		Seccomp: filter,
		CapLast: unix.CAP_LAST_CAP,
		Python:  cfg.Zygote,
		NetNS:   true,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			s.CapLast = n
		}
	}
	if cfg.Landlock {
		plan, err := planLandlock(nativeRules())
		if err != nil {
			return nil, fmt.Errorf("landlock: %w", err)
		}
		s.Landlock = &plan
		s.NetNS = plan.Scoped&unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET == 0
	}
	return s, nil
}

// runZygote makes this box a warm template: it starts the zygote as the box's root
// (it needs its capabilities in the box's user namespace to make each run's
// namespaces and mounts), serving the socket on ZygoteFD, and reaps every process of
// the box, as pid 1, until the zygote ends (the host closed the socket, or it died).
func runZygote(cfg *Config) (Status, error) {
	settings, err := newZygoteSettings(cfg)
	if err != nil {
		return Status{}, err
	}
	js, err := json.Marshal(settings)
	if err != nil {
		return Status{}, err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return Status{}, err
	}
	sock := os.NewFile(ZygoteFD, "zygote")
	argv := slices.Concat(cfg.Zygote, []string{"-c", zygoteSource, string(js)})
	// no_new_privs here too: nothing the zygote execs may gain privileges.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return Status{}, fmt.Errorf("no_new_privs: %w", err)
	}
	z, err := os.StartProcess(cfg.Zygote[0], argv, &os.ProcAttr{
		Dir:   "/",
		Env:   cfg.Env,
		Files: []*os.File{devnull, os.Stdout, os.Stderr, sock},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	devnull.Close()
	sock.Close()
	if err != nil {
		return Status{Stage: "exec", Error: err.Error()}, nil
	}
	st := Status{Stage: "zygote"}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: the zygote and every run are gone
			return st, nil
		}
		if pid == z.Pid {
			st.Error = "the zygote ended: " + describeWait(ws)
			_ = unix.Kill(-1, unix.SIGKILL) // the runs in progress go with it
		}
	}
}

func describeWait(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + unix.SignalName(ws.Signal())
	}
	return "exit " + strconv.Itoa(ws.ExitStatus())
}
