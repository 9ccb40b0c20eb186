// Package procfs reads the parts of /proc that runbox looks at about other processes.
package procfs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is a process's /proc/PID/stat.
type Stat struct {
	Comm string
	// Fields are the fields after the command name: Fields[0] is the state (field 3 in
	// proc(5)), Fields[1] the parent pid (4), Fields[19] the start time (22).
	Fields []string
	ppid   int
}

// ReadStat reads pid's stat. The command name may hold spaces and parentheses, so the
// fields count from the last ')'.
func ReadStat(pid int) (Stat, error) {
	if pid <= 0 {
		return Stat{}, fmt.Errorf("procfs: bad pid %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("procfs: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("procfs: malformed /proc/%d/stat", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("procfs: malformed /proc/%d/stat", pid)
	}
	return Stat{Comm: string(b[open+1 : end]), Fields: f, ppid: ppid}, nil
}

// PPid returns the parent pid.
func (s Stat) PPid() int { return s.ppid }

// StartTime returns when the process started, in clock ticks after boot (0 when the
// field is missing).
func (s Stat) StartTime() uint64 {
	if len(s.Fields) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(s.Fields[19], 10, 64)
	return n
}
