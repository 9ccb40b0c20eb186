package sandboxtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// engineDirs hold the mounts of container engines, which other test binaries on the
// machine may create at any time; a backend that uses an engine reports its containers
// through Leftovers instead.
var engineDirs = []string{"/var/lib/docker/", "/run/docker/", "/var/run/docker/", "/run/containerd/",
	"/var/lib/containerd/", "/var/lib/containers/", "/run/containers/", "/run/netns/"}

// readMounts returns the test process's mount table as a multiset of "root mount-point
// type source", leaving out the ids that change when a mount is replaced by its twin.
func readMounts() (map[string]int, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	m := make(map[string]int)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			return nil, fmt.Errorf("malformed line of /proc/self/mountinfo: %q", line)
		}
		m[f[3]+" "+f[4]+" "+g[0]+" "+g[1]]++
	}
	return m, nil
}

func addedMounts(before, after map[string]int) []string {
	var out []string
	for k, n := range after {
		if n <= before[k] {
			continue
		}
		mp := strings.Fields(k)[1] + "/"
		if slices.ContainsFunc(engineDirs, func(d string) bool { return strings.HasPrefix(mp, d) }) {
			continue
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// fileState is what must not change in a host file a box may try to reach.
type fileState struct {
	exists     bool
	sum        [32]byte
	mode       os.FileMode
	uid, gid   uint32
	size       int64
	mtime, ino int64
}

func statFile(path string) (fileState, error) {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	fs := fileState{exists: true, mode: fi.Mode(), uid: st.Uid, gid: st.Gid, size: fi.Size(),
		mtime: fi.ModTime().UnixNano(), ino: int64(st.Ino)}
	if fi.Mode().IsRegular() {
		b, err := os.ReadFile(path)
		if err != nil {
			return fileState{}, err
		}
		fs.sum = sha256.Sum256(b)
	}
	return fs, nil
}

// unchanged records paths on the host and returns a check that they did not change,
// and that a directory among them gained or lost no entry.
func unchanged(t *testing.T, paths ...string) func(t *testing.T) {
	t.Helper()
	type state struct {
		file    fileState
		entries []string
	}
	read := func(t *testing.T, p string) state {
		t.Helper()
		fs, err := statFile(p)
		if err != nil {
			t.Fatalf("host: %v", err)
		}
		var s state
		s.file = fs
		if fs.mode.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				t.Fatalf("host: %v", err)
			}
			for _, e := range ents {
				s.entries = append(s.entries, e.Name())
			}
		}
		return s
	}
	before := make(map[string]state, len(paths))
	for _, p := range paths {
		before[p] = read(t, p)
	}
	return func(t *testing.T) {
		t.Helper()
		for _, p := range paths {
			b, a := before[p], read(t, p)
			if b.file != a.file {
				t.Errorf("host: %s changed during the run: %+v → %+v", p, b.file, a.file)
			}
			if !slices.Equal(b.entries, a.entries) {
				t.Errorf("host: the entries of directory %s changed during the run: %q → %q", p, b.entries, a.entries)
			}
		}
	}
}

// absent returns a check that none of paths exists on the host after the run.
func absent(paths ...string) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		for _, p := range paths {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("host: %s exists after the run: a write in the box reached the host", p)
				_ = os.Remove(p)
			}
		}
	}
}

// both combines host checks.
func both(checks ...func(t *testing.T)) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		for _, c := range checks {
			c(t)
		}
	}
}

// hostNet holds the services of the host that no box may reach: a TCP listener on
// every IPv4 address, a unix socket in a directory of the test's, and an abstract unix
// socket. It counts the connections they accept.
type hostNet struct {
	port     int
	unixPath string
	abstract string // without the leading NUL
	accepted atomic.Int64
}

func listenHost(t *testing.T, marker string) *hostNet {
	t.Helper()
	h := &hostNet{unixPath: filepath.Join(t.TempDir(), "sbt.sock"), abstract: "sbt-" + marker + "-host"}
	tcp, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	h.port = tcp.Addr().(*net.TCPAddr).Port
	unix, err := net.Listen("unix", h.unixPath)
	if err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	abstract, err := net.Listen("unix", "@"+h.abstract)
	if err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	for _, l := range []net.Listener{tcp, unix, abstract} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				h.accepted.Add(1)
				c.Close()
			}
		}()
		t.Cleanup(func() { l.Close() })
	}
	return h
}

// noneAccepted returns a host check that no host service accepted a connection during
// the run.
func (h *hostNet) noneAccepted() func(t *testing.T) {
	before := h.accepted.Load()
	return func(t *testing.T) {
		t.Helper()
		if n := h.accepted.Load() - before; n > 0 {
			t.Errorf("host: a service of the host's accepted %d connection(s) from the box", n)
		}
	}
}

// hostAddrs returns the host's IPv4 addresses but loopback ones, and its default IPv4
// gateways: what a box with a careless network could reach.
func hostAddrs() (addrs, gateways []string) {
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			addrs = append(addrs, ipn.IP.String())
		}
	}
	b, _ := os.ReadFile("/proc/net/route")
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Iface Destination Gateway …, hexadecimal in host (little-endian) order.
		if len(f) < 3 || f[1] != "00000000" || f[2] == "00000000" {
			continue
		}
		var g uint32
		if _, err := fmt.Sscanf(f[2], "%x", &g); err == nil {
			ip := net.IPv4(byte(g), byte(g>>8), byte(g>>16), byte(g>>24)).String()
			if !slices.Contains(gateways, ip) {
				gateways = append(gateways, ip)
			}
		}
	}
	return addrs, gateways
}
