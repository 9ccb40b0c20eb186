package docker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/lang"
	"github.com/runboxhq/runbox/sandbox"
)

var _ sandbox.Doctor = (*Backend)(nil)

// Diagnose checks the engine (reachable, version, cgroups, runtimes, seccomp), the
// images of the languages and the init, then runs a command in a container.
func (b *Backend) Diagnose(ctx context.Context) []sandbox.Check {
	engineCheck := sandbox.Check{Name: "engine"}
	ping, err := b.cli.Ping(ctx, client.PingOptions{})
	if err != nil {
		engineCheck.Detail = unreachable(b.cli.DaemonHost(), err).Error()
		engineCheck.Fix = "apt-get install docker.io, then start dockerd (or systemctl start docker), or set DOCKER_HOST"
		return []sandbox.Check{engineCheck}
	}
	engineCheck.OK = true
	engineCheck.Detail = fmt.Sprintf("%s answers (API %s)", b.cli.DaemonHost(), ping.APIVersion)
	checks := []sandbox.Check{engineCheck}

	info, err := b.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return append(checks, sandbox.Check{Name: "engine info", Detail: err.Error()})
	}
	in := info.Info
	checks = append(checks, sandbox.Check{Name: "version", OK: true,
		Detail: fmt.Sprintf("Docker %s, kernel %s, %d CPUs, %s of memory", in.ServerVersion, in.KernelVersion, in.NCPU, units.BytesSize(float64(in.MemTotal)))})
	checks = append(checks, sandbox.Check{Name: "cgroups", OK: in.CgroupDriver != "" && in.CgroupDriver != "none",
		Detail: fmt.Sprintf("driver %s, cgroup v%s", in.CgroupDriver, in.CgroupVersion),
		Fix:    "the engine must enforce memory and pids limits: run it with a cgroup driver (cgroupfs or systemd)"})
	var runtimes []string
	for name := range in.Runtimes {
		runtimes = append(runtimes, name)
	}
	slices.Sort(runtimes)
	checks = append(checks, sandbox.Check{Name: "runtimes", OK: true,
		Detail: fmt.Sprintf("%s (default %s)", strings.Join(runtimes, ", "), in.DefaultRuntime)})
	gvisor := sandbox.Check{Name: "gVisor", Optional: true, OK: slices.Contains(runtimes, "runsc")}
	if gvisor.OK {
		gvisor.Detail = "runsc is registered (a user-space kernel: stronger isolation, slower system calls)"
	} else {
		gvisor.Detail = "runsc is not registered"
		gvisor.Fix = "for a kernel boundary under the containers, install gVisor and register runsc with the engine"
	}
	checks = append(checks, gvisor)
	seccomp := sandbox.Check{Name: "seccomp", OK: slices.ContainsFunc(in.SecurityOptions, func(s string) bool { return strings.Contains(s, "seccomp") })}
	seccomp.Detail = "security options: " + strings.Join(in.SecurityOptions, ", ")
	seccomp.Fix = "use an engine built with seccomp (runbox's own filter applies inside as well)"
	checks = append(checks, seccomp)

	for _, l := range lang.All() {
		img := b.imageOf(l)
		c := sandbox.Check{Name: "image " + l.Name}
		if err := b.ensureImage(ctx, img); err != nil {
			c.Detail = err.Error()
			c.Fix = "scripts/docker-images.sh builds " + DefaultImage + " offline; or pass --image " + l.Name + "=IMAGE, or --pull"
		} else {
			c.OK, c.Detail = true, img
		}
		checks = append(checks, c)
	}
	init := sandbox.Check{Name: "init", Optional: true, OK: static()}
	if init.OK {
		init.Detail = "runbox is statically linked: its init runs in any Linux image"
	} else {
		init.Detail = "runbox is dynamically linked (a cgo build): its init needs a compatible C library in each image"
		init.Fix = "build runbox with CGO_ENABLED=0"
	}
	checks = append(checks, init)

	for _, c := range checks {
		if !c.OK && !c.Optional && !strings.HasPrefix(c.Name, "image ") {
			return append(checks, sandbox.Check{Name: "trial run", Detail: "skipped: a requirement above is missing"})
		}
	}
	start := time.Now()
	res, err := b.Run(ctx, sandbox.Spec{Command: []string{"/bin/sh", "-c", "exit 0"}})
	trial := sandbox.Check{Name: "trial run"}
	switch {
	case err != nil:
		trial.Detail = err.Error()
	case res.Status != sandbox.StatusOK:
		trial.Detail = fmt.Sprintf("/bin/sh -c 'exit 0' ended with %s: %s", res.Status, res.Error)
	default:
		trial.OK = true
		trial.Detail = fmt.Sprintf("/bin/sh in a container of %s: ok in %v", b.cfg.Image, time.Since(start).Round(time.Millisecond))
	}
	return append(checks, trial)
}
