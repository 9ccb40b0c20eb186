package proc

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// spawnRequest is one os.StartProcess call, possibly made from a spawner thread.
type spawnRequest struct {
	path string
	argv []string
	attr *os.ProcAttr
	// join and leave move the forking thread in and out of a v1 cgroup around the fork,
	// so the child is born inside it and no fork can race the move.
	join, leave func(tid int) error
	resp        chan spawnResult
}

type spawnResult struct {
	p   *os.Process
	err error
}

// Children started with Pdeathsig get the signal when the *thread* that started them
// exits, not the process. Spawner goroutines lock their threads forever, so those
// threads live exactly as long as this program.
var spawners struct {
	once sync.Once
	reqs chan *spawnRequest
}

func spawnerCount() int { return max(4, runtime.GOMAXPROCS(0)) }

func spawn(req *spawnRequest, onSpawner bool) (*os.Process, error) {
	if !onSpawner {
		r := startOn(req)
		return r.p, r.err
	}
	spawners.once.Do(func() {
		spawners.reqs = make(chan *spawnRequest)
		for range spawnerCount() {
			go spawnLoop()
		}
	})
	req.resp = make(chan spawnResult, 1)
	spawners.reqs <- req
	r := <-req.resp
	return r.p, r.err
}

func spawnLoop() {
	runtime.LockOSThread() // never unlocked; see spawners
	for req := range spawners.reqs {
		req.resp <- startOn(req)
	}
}

func startOn(req *spawnRequest) spawnResult {
	if req.join != nil {
		tid := unix.Gettid()
		if err := req.join(tid); err != nil {
			return spawnResult{err: fmt.Errorf("proc: join cgroup: %w", err)}
		}
		defer req.leave(tid)
	}
	p, err := os.StartProcess(req.path, req.argv, req.attr)
	return spawnResult{p: p, err: err}
}

// The rlimit shim: Go cannot run code between fork and exec, so a child that needs
// rlimits is started as this same binary, which applies them and execs the target.
// The shim runs in package init, before the host program's main.
const shimEnv = "RUNBOX_PROC_RLIMITS"

func init() {
	if spec, ok := os.LookupEnv(shimEnv); ok && len(os.Args) >= 3 && os.Args[0] == shimArg0 {
		runShim(spec)
	}
}

const shimArg0 = "runbox-rlimit-shim"

func shimArgv(path string, argv []string, rl []Rlimit) (string, []string, string) {
	parts := make([]string, len(rl))
	for i, r := range rl {
		parts[i] = fmt.Sprintf("%d:%d:%d", r.Resource, r.Cur, r.Max)
	}
	return "/proc/self/exe", append([]string{shimArg0, path}, argv...), shimEnv + "=" + strings.Join(parts, ",")
}

func runShim(spec string) {
	os.Unsetenv(shimEnv)
	for _, part := range strings.Split(spec, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			shimFail(fmt.Errorf("bad rlimit %q", part))
		}
		res, err1 := strconv.Atoi(f[0])
		cur, err2 := strconv.ParseUint(f[1], 10, 64)
		hi, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			shimFail(fmt.Errorf("bad rlimit %q", part))
		}
		// syscall.Setrlimit (not unix's) so that the runtime does not restore its
		// saved RLIMIT_NOFILE at exec.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: cur, Max: hi}); err != nil {
			shimFail(fmt.Errorf("setrlimit %d: %w", res, err))
		}
	}
	err := syscall.Exec(os.Args[1], os.Args[2:], os.Environ())
	shimFail(fmt.Errorf("exec %s: %w", os.Args[1], err))
}

func shimFail(err error) {
	fmt.Fprintf(os.Stderr, "runbox: %v\n", err)
	os.Exit(127)
}
