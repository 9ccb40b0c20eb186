package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

// dockerPingTimeout bounds the engine check.
const dockerPingTimeout = 3 * time.Second

// dockerReport checks the Docker engine that a Docker backend would use: the socket of
// DOCKER_HOST (or the default one) answering the Engine API's ping. The Docker
// backend itself is not built yet (issue #7), so the report says that too.
func dockerReport(ctx context.Context) BackendReport {
	r := BackendReport{Backend: "docker"}
	r.Checks = append(r.Checks, sandbox.Check{Name: "backend",
		Detail: "not built into this runbox yet (the Docker backend is issue #7)",
		Fix:    "use the native backend"})
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	engine := sandbox.Check{Name: "engine", Optional: true}
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		engine.Detail = "DOCKER_HOST=" + host + ": only unix sockets are checked here"
		r.Checks = append(r.Checks, engine)
		return r
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	ctx, cancel := context.WithTimeout(ctx, dockerPingTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	resp, err := client.Do(req)
	if err != nil {
		engine.Detail = fmt.Sprintf("no engine at %s: %v", host, err)
		engine.Fix = "apt-get install docker.io, then start dockerd (or set DOCKER_HOST)"
		r.Checks = append(r.Checks, engine)
		return r
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	engine.OK = resp.StatusCode == http.StatusOK
	engine.Detail = fmt.Sprintf("%s answers the ping: %s %q, API %s", host, resp.Status, body, resp.Header.Get("Api-Version"))
	r.Checks = append(r.Checks, engine)
	return r
}
