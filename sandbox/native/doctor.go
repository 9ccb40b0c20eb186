package native

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"

	"github.com/runboxhq/runbox/sandbox"
	"github.com/runboxhq/runbox/sandbox/boxinit"
)

var _ sandbox.Doctor = (*Backend)(nil)

// Diagnose checks what the backend needs on this host, then runs /bin/true in a box.
func (b *Backend) Diagnose(ctx context.Context) []sandbox.Check {
	checks := []sandbox.Check{
		checkRoot(), checkUserNS(), checkCgroups(), checkSeccomp(), checkLandlock(),
	}
	for _, c := range checks {
		if !c.OK && !c.Optional {
			return append(checks, sandbox.Check{Name: "trial run", Detail: "skipped: a requirement above is missing"})
		}
	}
	start := time.Now()
	res, err := b.Run(ctx, sandbox.Spec{Command: []string{"/bin/true"}})
	trial := sandbox.Check{Name: "trial run"}
	switch {
	case err != nil:
		trial.Detail = err.Error()
		trial.Fix = "run with RUNBOX_LOG=debug for the box's setup steps, and report it"
	case res.Status != sandbox.StatusOK:
		trial.Detail = fmt.Sprintf("/bin/true ended with %s: %s", res.Status, res.Error)
	default:
		trial.OK = true
		trial.Detail = fmt.Sprintf("/bin/true in a box: ok in %v", time.Since(start).Round(10*time.Microsecond))
	}
	return append(checks, trial)
}

func checkRoot() sandbox.Check {
	c := sandbox.Check{Name: "privileges"}
	if os.Geteuid() == 0 {
		c.OK, c.Detail = true, "running as root"
		return c
	}
	c.Detail = fmt.Sprintf("running as uid %d", os.Geteuid())
	c.Fix = "run runbox as root (it maps each box to unprivileged host uids and needs to create cgroups)"
	return c
}

func checkUserNS() sandbox.Check {
	c := sandbox.Check{Name: "user namespaces"}
	data, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil {
		c.Detail = "the kernel has no user namespaces: " + err.Error()
		c.Fix = "use a kernel built with CONFIG_USER_NS"
		return c
	}
	if v := strings.TrimSpace(string(data)); v == "0" {
		c.Detail = "user.max_user_namespaces is 0"
		c.Fix = "sysctl -w user.max_user_namespaces=15000"
		return c
	} else {
		c.Detail = "user.max_user_namespaces = " + v
	}
	c.OK = true
	return c
}

func checkCgroups() sandbox.Check {
	c := sandbox.Check{Name: "cgroups"}
	legacy, unified, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	switch cgroups.Mode() {
	case cgroups.Unified:
		dir := filepath.Join("/sys/fs/cgroup", unified)
		ctrls, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		c.Detail = fmt.Sprintf("cgroup v2, own cgroup %s, controllers: %s", dir, strings.TrimSpace(string(ctrls)))
		for _, want := range []string{"memory", "pids", "cpu"} {
			if !strings.Contains(" "+string(ctrls)+" ", " "+want+" ") {
				c.Fix = fmt.Sprintf("delegate the %s controller to %s (systemd: Delegate=yes in the unit, or run under systemd-run -p Delegate=yes)", want, dir)
				return c
			}
		}
		if unix.Access(dir, unix.W_OK) != nil {
			c.Fix = "make " + dir + " writable to runbox (cgroup delegation)"
			return c
		}
	case cgroups.Legacy, cgroups.Hybrid:
		var found []string
		for _, ctrl := range []string{"memory", "pids", "cpuacct", "freezer"} {
			own, ok := legacy[ctrl]
			dir := filepath.Join("/sys/fs/cgroup", ctrl, own)
			if !ok || unix.Access(dir, unix.W_OK) != nil {
				c.Detail = fmt.Sprintf("cgroup v1: the %s controller is not writable at %s", ctrl, dir)
				c.Fix = "mount the v1 " + ctrl + " controller read-write, or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)"
				if os.Geteuid() != 0 {
					c.Fix = fmt.Sprintf("run as root, or give uid %d the cgroup %s (chown -R)", os.Geteuid(), dir)
				}
				return c
			}
			found = append(found, ctrl+" "+dir)
		}
		c.Detail = "cgroup v1: " + strings.Join(found, ", ")
	default:
		c.Detail = "no cgroup file system mounted at /sys/fs/cgroup"
		c.Fix = "mount cgroup2 at /sys/fs/cgroup"
		return c
	}
	c.OK = true
	return c
}

func checkSeccomp() sandbox.Check {
	c := sandbox.Check{Name: "seccomp"}
	data, _ := os.ReadFile("/proc/self/status")
	if !strings.Contains(string(data), "Seccomp:") {
		c.Detail = "the kernel has no seccomp filters"
		c.Fix = "use a kernel built with CONFIG_SECCOMP_FILTER"
		return c
	}
	c.OK, c.Detail = true, "seccomp filters available"
	return c
}

func checkLandlock() sandbox.Check {
	c := sandbox.Check{Name: "landlock", Optional: true}
	abi, err := boxinit.LandlockABI()
	if err != nil {
		c.Detail = "not available: " + err.Error() + " (boxes still run, with one layer less)"
		c.Fix = "enable Landlock: a kernel with CONFIG_SECURITY_LANDLOCK and lsm=landlock,… on its command line"
		return c
	}
	c.OK, c.Detail = true, fmt.Sprintf("ABI version %d", abi)
	return c
}
