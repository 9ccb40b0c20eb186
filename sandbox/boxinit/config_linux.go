package boxinit

import (
	"bufio"
	"encoding/json"
	"io"
	"math"

	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/api"
)

// NewConfig returns the config of a run of argv with env under lim: the network, the
// tmpfs sizes and the rlimits. Files are added with AddFile; Write sends it all.
func NewConfig(argv, env []string, lim api.Limits) *Config {
	cpuSec := uint64(math.Ceil(lim.CPUTime.Seconds()))
	return &Config{
		Argv:      argv,
		Env:       env,
		Loopback:  lim.Network == api.NetworkLoopback,
		TmpSize:   lim.TmpSize,
		TmpInodes: lim.TmpInodes,
		Rlimits: []Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Cur: uint64(lim.OpenFiles), Max: uint64(lim.OpenFiles)},
			{Resource: unix.RLIMIT_FSIZE, Cur: uint64(lim.FileSize), Max: uint64(lim.FileSize)},
			{Resource: unix.RLIMIT_STACK, Cur: uint64(lim.Stack), Max: uint64(lim.Stack)},
			{Resource: unix.RLIMIT_CORE},
			// The program's processes and threads, counted per uid: the box's user in
			// its user namespace (native), or a uid no other run has (Docker); the
			// init's own threads are root's and do not count, so the limit is exact.
			// The seccomp filter keeps the program from raising it.
			{Resource: unix.RLIMIT_NPROC, Cur: uint64(lim.Processes), Max: uint64(lim.Processes)},
			// A per-process backstop behind the watch of the cgroup's CPU time
			// (SIGXCPU, then SIGKILL).
			{Resource: unix.RLIMIT_CPU, Cur: cpuSec + 1, Max: cpuSec + 2},
		},
	}
}

// AddFile adds an input file, whose content follows the config line.
func (c *Config) AddFile(name string, content []byte, executable bool) {
	c.Files = append(c.Files, File{Name: name, Size: int64(len(content)), Executable: executable})
	c.contents = append(c.contents, content)
}

// Shape returns the config without what is the run's own (argv, env, files, stdin):
// its limits, network and uid, all that a warm run's zygote and pid 1 are told (they
// serve other runs after it, and what a process held stays in its memory).
func (c *Config) Shape() *Config {
	s := *c
	s.Argv, s.Env, s.Files, s.contents, s.StdinSize = nil, nil, nil, nil, 0
	return &s
}

// Write sends the config line, the files' contents and stdin to the init.
func (c *Config) Write(w io.Writer, stdin []byte) error {
	c.StdinSize = int64(len(stdin))
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(append(line, '\n'))
	for _, b := range c.contents {
		bw.Write(b)
	}
	bw.Write(stdin)
	return bw.Flush()
}
