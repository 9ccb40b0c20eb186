package queue

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"
)

// Defaults of ServerConfig.
const (
	// DefaultMaxPayload is the largest message of an embedded server: a job (the run's
	// code, files and stdin) or a record with its result. NATS's own default is 1 MiB.
	DefaultMaxPayload  = 8 << 20
	serverReadyTimeout = 30 * time.Second
)

// URLFile is the file in an embedded server's directory that holds its client URL
// (with the token): `runbox doctor` and local workers read it.
const URLFile = "nats.url"

// ServerConfig configures a NATS server run in this process.
type ServerConfig struct {
	// Dir holds JetStream's files; one server at a time may use it (a lock file says
	// so). Required.
	Dir string
	// Name is the server's name, unique in a cluster (default: "runbox").
	Name string
	// Listen is the client address ("127.0.0.1:0": a free port); empty: none, the
	// server is reached in-process only.
	Listen string
	// Token, when set, is required of clients that connect over the network. An
	// embedded server with a Listen address and no Token gets a random one.
	Token string
	// Cluster names the cluster this server is a node of, reached at ClusterListen by
	// its Routes (nats://host:port of the other nodes). Empty: a single server.
	Cluster       string
	ClusterListen string
	Routes        []string
	// MaxPayload is the largest message (default DefaultMaxPayload).
	MaxPayload int32
}

// Server is a NATS server with JetStream, running in this process.
type Server struct {
	ns    *server.Server
	url   string
	token string
	lock  *os.File
	dir   string
}

// StartServer starts a NATS server with JetStream and waits until it takes
// connections (in a cluster: until it has its routes to start with; the JetStream
// meta leader is elected afterwards).
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("queue: no data directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: data directory: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s, err := startServer(cfg)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.lock, s.dir = lock, cfg.Dir
	if s.url != "" {
		if err := os.WriteFile(filepath.Join(cfg.Dir, URLFile), []byte(s.url+"\n"), 0o600); err != nil {
			s.Shutdown()
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	return s, nil
}

func startServer(cfg ServerConfig) (*Server, error) {
	name := cfg.Name
	if name == "" {
		name = "runbox"
	}
	opts := &server.Options{
		ServerName: name, JetStream: true, StoreDir: cfg.Dir, NoLog: true, NoSigs: true,
		MaxPayload: cfg.MaxPayload,
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitAddr(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("queue: listen address: %w", err)
		}
		opts.Host, opts.Port = host, port
		opts.Authorization = cfg.Token
		if opts.Authorization == "" && cfg.Cluster == "" {
			opts.Authorization = rand.Text()
		}
	}
	if cfg.Cluster != "" {
		host, port, err := splitAddr(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("queue: cluster address: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.Cluster, Host: host, Port: port}
		opts.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("queue: nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(serverReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("queue: the nats server was not ready after %v", serverReadyTimeout)
	}
	s := &Server{ns: ns, token: opts.Authorization}
	if !opts.DontListen {
		u, _ := url.Parse(ns.ClientURL())
		if opts.Authorization != "" {
			u.User = url.User(opts.Authorization)
		}
		s.url = u.String()
	}
	return s, nil
}

// splitAddr parses host:port; port 0 asks for a free one.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// lockDir takes dir's lock file, or says which process holds it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "runbox.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		return nil, fmt.Errorf("queue: data directory %s is in use by another runbox (pid %s); give each server its own",
			dir, strings.TrimSpace(string(b[:n])))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// URL is the client URL (with the token) of a server that listens; empty otherwise.
func (s *Server) URL() string { return s.url }

// Connect returns an in-process connection to the server.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(s.ns), nats.Name(name), nats.MaxReconnects(-1), nats.Token(s.token))
}

// Shutdown stops the server (its clients lose their connections) and releases the
// directory.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	if s.url != "" {
		os.Remove(filepath.Join(s.dir, URLFile))
	}
	if s.lock != nil {
		s.lock.Close()
	}
}

// Connect connects to a NATS server or cluster at urls (comma-separated), and keeps
// reconnecting, forever and quickly, when a server goes away.
func Connect(urls, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(urls, nats.Name(name), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(false),
		nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("queue: connect to %s: %w", redact(urls), err)
	}
	return nc, nil
}

// redact hides the credentials of NATS URLs in messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("***")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
