package docker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/internal/procfs"
)

// janitorLoop sweeps every JanitorInterval until Close.
func (b *Backend) janitorLoop() {
	defer b.janitorWG.Done()
	t := time.NewTicker(b.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.readyMu.Lock()
		ready := b.ready != nil
		b.readyMu.Unlock()
		if ready {
			b.sweep(context.Background())
		}
	}
}

// sweep removes the containers runbox made whose owner is dead, or whose deadline has
// passed, the warm containers of this backend that waited too long, and old init
// volumes.
func (b *Backend) sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labelOwner)})
	if err != nil {
		b.log.Debug("docker: janitor: list containers", "err", err)
		return
	}
	b.warm.expire()
	now := time.Now()
	for _, c := range list.Items {
		owner := c.Labels[labelOwner]
		if owner == b.owner {
			continue // ours: removed when its run ends
		}
		deadline, _ := strconv.ParseInt(c.Labels[labelDeadline], 10, 64)
		why := ""
		switch {
		case ownerDead(owner):
			why = "owner gone"
		case deadline > 0 && now.Unix() > deadline:
			why = "past its deadline"
		default:
			continue
		}
		if err := b.remove(c.ID); err != nil {
			b.log.Debug("docker: janitor", "container", c.ID, "err", err)
			continue
		}
		b.log.Info("docker: janitor removed a container", "container", c.ID[:12], "run", c.Labels[labelRun], "why", why)
	}
	b.removeOldInits(ctx)
}

// initVolumeMaxAge is how old another build's init volume must be before the janitor
// removes it (when no container uses it: the engine refuses otherwise).
const initVolumeMaxAge = 24 * time.Hour

// removeOldInits removes the init volumes of other runbox builds that are a day old
// and unused, so that rebuilds do not pile up copies of the binary.
func (b *Backend) removeOldInits(ctx context.Context) {
	b.readyMu.Lock()
	ours := ""
	if b.ready != nil {
		ours = b.ready.initVolume
	}
	b.readyMu.Unlock()
	vols, err := b.cli.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", labelInit)})
	if err != nil {
		return
	}
	for _, v := range vols.Items {
		created, err := time.Parse(time.RFC3339, v.CreatedAt)
		if v.Name == ours || err != nil || time.Since(created) < initVolumeMaxAge {
			continue
		}
		if _, err := b.cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err == nil {
			b.log.Info("docker: janitor removed an old init volume", "volume", v.Name)
		}
	}
}

// ownerDead reports whether owner names a process of this boot that no longer runs.
// An owner on another machine or boot is judged by its deadline only.
func ownerDead(owner string) bool {
	parts := strings.Split(owner, "/")
	if len(parts) != 3 {
		return false
	}
	if parts[0] != bootID() {
		return false
	}
	pid, err1 := strconv.Atoi(parts[1])
	start, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return false
	}
	return startTime(pid) != start
}

// startTime returns when pid started, in clock ticks since boot (0 when it does not
// run).
func startTime(pid int) uint64 {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.StartTime()
}
