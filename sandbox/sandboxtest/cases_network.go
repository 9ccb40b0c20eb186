package sandboxtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/sandbox"
)

// unreachable are the reasons a connection out of the box may fail with. A timeout is
// not one of them (a box without a route fails at once), nor is a refusal, which only
// the box's own loopback may give.
var unreachable = []string{"ENETUNREACH", "EHOSTUNREACH", "EAFNOSUPPORT", "EADDRNOTAVAIL", "EACCES", "EPERM"}

// connectProgs try a TCP connection to each host:port of $SBT_TARGETS, for 3 s at most
// (Bash's has no timeout: the wall time limit ends it).
var connectProgs = progs(`import socket
for target in os.environ["SBT_TARGETS"].split():
    host, port = target.rsplit(":", 1)

    def connect():
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3):
            pass

    attempt("connect " + target, connect)
`, `const net = require('net');
function connect(target) {
  return new Promise((resolve) => {
    const i = target.lastIndexOf(':');
    const host = target.slice(0, i).replace(/^\[|\]$/g, '');
    const sock = net.connect({ host, port: Number(target.slice(i + 1)) });
    const done = (line) => { clearTimeout(timer); sock.destroy(); console.log(line); resolve(); };
    const timer = setTimeout(() => done('connect ' + target + ' BLOCKED TIMEOUT'), 3000);
    sock.on('connect', () => done(['ESC' + 'APED', 'connect', target].join(' ')));
    sock.on('error', (e) => done('connect ' + target + ' BLOCKED ' + e.code));
  });
}
(async () => {
  for (const target of process.env.SBT_TARGETS.split(' ')) await connect(target);
})();
`, `for target in $SBT_TARGETS; do
  h=${target%:*}; p=${target##*:}; h=${h#[}; h=${h%]}
  attempt "connect $target" ': <>/dev/tcp/$h/$p'
done
`)

func (s *suite) networkCases() []*hostileCase {
	outbound := []string{"1.1.1.1:80", "8.8.8.8:53", "[2606:4700:4700::1111]:80"}
	var hostTargets []string
	hostTargets = append(hostTargets, fmt.Sprintf("127.0.0.1:%d", s.net.port))
	addrs, gateways := hostAddrs()
	for _, a := range addrs {
		hostTargets = append(hostTargets, fmt.Sprintf("%s:%d", a, s.net.port))
	}
	for _, g := range gateways {
		hostTargets = append(hostTargets, g+":53", fmt.Sprintf("%s:%d", g, s.net.port))
	}
	hostTargets = append(hostTargets, "169.254.169.254:80")
	sockets := []string{"/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
		"/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket", "/run/systemd/private",
		"/run/systemd/journal/socket", "/dev/log", s.net.unixPath, "@" + s.net.abstract}
	loopback := sandbox.Limits{Network: api.NetworkLoopback}

	connects := func(targets []string) []string {
		var w []string
		for _, t := range targets {
			w = append(w, "connect "+t)
		}
		return w
	}
	noneAccepted := func(t *testing.T) func(t *testing.T) { return s.net.noneAccepted() }
	return []*hostileCase{
		{
			id: "F1", name: "outbound_connect",
			code: connectProgs,
			env:  map[string]string{"SBT_TARGETS": strings.Join(outbound, " ")},
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantBlocked(t, o, connects(outbound), unreachable...)
			},
		},
		{
			id: "F1", name: "outbound_connect_loopback_mode",
			code:   connectProgs,
			env:    map[string]string{"SBT_TARGETS": strings.Join(outbound, " ")},
			limits: loopback,
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantBlocked(t, o, connects(outbound), unreachable...)
			},
		},
		{
			id: "F2", name: "dns",
			code: progs(`import socket
for name in ["example.com", "google.com"]:
    attempt("resolve " + name, socket.getaddrinfo, name, 80)
`, `const dns = require('dns');
function resolve(what, f) {
  return new Promise((done) => {
    const timer = setTimeout(() => { console.log(what + ' BLOCKED TIMEOUT'); done(); }, 5000);
    f().then(() => { clearTimeout(timer); escaped(what); done(); },
      (e) => { clearTimeout(timer); console.log(what + ' BLOCKED ' + e.code); done(); });
  });
}
(async () => {
  for (const name of ['example.com', 'google.com']) {
    await resolve('resolve ' + name, () => dns.promises.lookup(name));
    await resolve('query ' + name, () => dns.promises.resolve4(name));
  }
})();
`, `for name in example.com google.com; do
  attempt "resolve $name" 'getent hosts $name'
done
`),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				whats := []string{"resolve example.com", "resolve google.com"}
				if o.variant == javascript {
					whats = append(whats, "query example.com", "query google.com")
				}
				wantBlocked(t, o, whats)
				wantNoTimeout(t, o)
			},
		},
		{
			id: "F3", name: "host_services",
			code: connectProgs,
			env:  map[string]string{"SBT_TARGETS": strings.Join(hostTargets, " ")},
			host: noneAccepted,
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantBlocked(t, o, connects(hostTargets), unreachable...)
			},
		},
		{
			id: "F3", name: "host_services_loopback_mode",
			code:   connectProgs,
			env:    map[string]string{"SBT_TARGETS": strings.Join(hostTargets, " ")},
			limits: loopback,
			host:   noneAccepted,
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				// The box's own loopback is up, and nothing listens on it.
				wantBlocked(t, o, connects(hostTargets[:1]), "ECONNREFUSED")
				wantBlocked(t, o, connects(hostTargets[1:]), unreachable...)
			},
		},
		{
			id: "F4", name: "host_unix_sockets",
			// Bash cannot connect to a socket; opening one that exists fails with
			// ENXIO, so it still tells whether it is there. It cannot name an
			// abstract socket.
			code: progs(`import socket
for p in os.environ["SBT_SOCKETS"].split():

    def connect():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect("\0" + p[1:] if p.startswith("@") else p)

    attempt("connect " + p, connect)
`, `const net = require('net');
function connect(p) {
  return new Promise((resolve) => {
    const sock = net.connect({ path: p.startsWith('@') ? '\0' + p.slice(1) : p });
    const done = (line) => { clearTimeout(timer); sock.destroy(); console.log(line); resolve(); };
    const timer = setTimeout(() => done('connect ' + p + ' BLOCKED TIMEOUT'), 3000);
    sock.on('connect', () => done(['ESC' + 'APED', 'connect', p].join(' ')));
    sock.on('error', (e) => done('connect ' + p + ' BLOCKED ' + e.code));
  });
}
(async () => {
  for (const p of process.env.SBT_SOCKETS.split(' ')) await connect(p);
})();
`, `for p in $SBT_SOCKETS; do
  [ "${p#@}" = "$p" ] || continue
  attempt "connect $p" ': <"$p"'
done
`),
			env:  map[string]string{"SBT_SOCKETS": strings.Join(sockets, " ")},
			host: noneAccepted,
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				paths := sockets
				if o.variant == bash {
					paths = paths[:len(paths)-1]
				}
				wantBlocked(t, o, connects(paths), "ENOENT", "ECONNREFUSED", "EACCES", "EPERM")
			},
		},
		{
			id: "F5", name: "denied_socket_families", amd64: true,
			// Only Python can ask for these.
			code: progs(pyCtypes+`import socket
attempt("socket AF_VSOCK", socket.socket, 40, socket.SOCK_STREAM)
attempt("socket AF_NETLINK", socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 0)
attempt("socket AF_PACKET", socket.socket, socket.AF_PACKET, socket.SOCK_RAW, 0)
attempt("socket SOCK_RAW", socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
params = ctypes.create_string_buffer(120)
attempt("io_uring_setup", sys_call, 425, 1, params)
`, "", ""),
			check: func(t *testing.T, o *outcome) {
				wantExit(t, o, sandbox.StatusOK, 0)
				wantBlocked(t, o, []string{"socket AF_VSOCK", "socket AF_NETLINK", "socket AF_PACKET", "socket SOCK_RAW", "io_uring_setup"})
			},
		},
	}
}

// wantNoTimeout fails if an attempt of the program timed out rather than failing at
// once.
func wantNoTimeout(t *testing.T, o *outcome) {
	t.Helper()
	for what, reason := range attempts(o.Stdout) {
		if reason == "TIMEOUT" || reason == "TimeoutError" {
			t.Errorf("%q timed out: the box reached something that did not answer", what)
		}
	}
}
