package docker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/runboxhq/runbox/sandbox"
)

// warmMaxIdle is how long a warm container waits for a run before it is replaced.
const warmMaxIdle = 5 * time.Minute

// warmPools keeps, per image, Config.Warm started containers whose init waits for its
// config. Each serves one run, like a cold one, and is replaced in the background.
// A warm container is made with the default limits and the maximum ulimits: a run
// with other memory or process limits updates them through the engine; a run with
// other tmpfs sizes gets a cold container.
type warmPools struct {
	b      *Backend
	mu     sync.Mutex
	pools  map[string]*warmPool
	taken  map[string]bool // handed to a run and not yet removed
	closed bool
	fill   sync.WaitGroup
}

type warmPool struct {
	idle    []*box
	filling int
}

func newWarmPools(b *Backend) *warmPools {
	return &warmPools{b: b, pools: make(map[string]*warmPool), taken: make(map[string]bool)}
}

// pool returns image's pool, made on first use; w.mu is held.
func (w *warmPools) pool(image string) *warmPool {
	p := w.pools[image]
	if p == nil {
		p = &warmPool{}
		w.pools[image] = p
	}
	return p
}

// fits reports whether a run with limits lim can use a warm container.
func fits(lim sandbox.Limits) bool {
	d := sandbox.WithDefaults(sandbox.Limits{})
	return lim.TmpSize == d.TmpSize && lim.TmpInodes == d.TmpInodes
}

// take returns a warm container of image set to lim, or nil when there is none (the
// caller makes a cold one), and starts a refill.
func (w *warmPools) take(ctx context.Context, eng *engine, image string, lim sandbox.Limits) (*box, error) {
	if w.b.cfg.Warm <= 0 {
		return nil, nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, nil
	}
	p := w.pool(image)
	var bx *box
	if fits(lim) && len(p.idle) > 0 {
		bx, p.idle = p.idle[0], p.idle[1:]
		w.taken[bx.id] = true
	}
	w.refill(eng, image, p)
	w.mu.Unlock()
	if bx == nil {
		return nil, nil
	}
	if lim.Memory != bx.limits.Memory || lim.Processes != bx.limits.Processes {
		pids := int64(lim.Processes) + initPids
		_, err := w.b.cli.ContainerUpdate(ctx, bx.id, client.ContainerUpdateOptions{Resources: &container.Resources{
			Memory: lim.Memory, MemorySwap: lim.Memory, PidsLimit: &pids}})
		if err != nil {
			w.b.log.Debug("docker: warm container update failed; a cold one serves", "err", err)
			if w.b.remove(bx.id) == nil {
				w.removed(bx.id)
			}
			return nil, nil
		}
	}
	return bx, nil
}

// refill starts making warm containers until the pool holds Config.Warm; w.mu is
// held.
func (w *warmPools) refill(eng *engine, image string, p *warmPool) {
	for len(p.idle)+p.filling < w.b.cfg.Warm {
		p.filling++
		w.fill.Add(1)
		go func() {
			defer w.fill.Done()
			bx, err := w.make(eng, image)
			w.mu.Lock()
			p.filling--
			closed := w.closed
			if err == nil && !closed {
				p.idle = append(p.idle, bx)
			}
			w.mu.Unlock()
			switch {
			case err != nil:
				w.b.log.Debug("docker: warm container", "image", image, "err", err)
			case closed: // made as the backend closed: close waits for this removal
				_ = w.b.remove(bx.id)
			}
		}()
	}
}

// fillAndWait starts filling image's pool and waits until it holds Config.Warm containers,
// or ctx ends.
func (w *warmPools) fillAndWait(ctx context.Context, eng *engine, image string) error {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return sandbox.ErrClosed
		}
		p := w.pool(image)
		full := len(p.idle) >= w.b.cfg.Warm
		if !full {
			w.refill(eng, image, p)
		}
		w.mu.Unlock()
		if full {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// make creates and starts a warm container.
func (w *warmPools) make(eng *engine, image string) (*box, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	bx, err := w.b.newBox(ctx, eng, image, sandbox.WithDefaults(sandbox.Limits{}), "", true)
	if err != nil {
		return nil, err
	}
	if _, err := w.b.cli.ContainerStart(ctx, bx.id, client.ContainerStartOptions{}); err != nil {
		_ = w.b.remove(bx.id)
		return nil, err
	}
	return bx, nil
}

// expire removes the warm containers that waited longer than warmMaxIdle; the next
// run refills.
func (w *warmPools) expire() {
	w.mu.Lock()
	var old []*box
	for _, p := range w.pools {
		p.idle = slices.DeleteFunc(p.idle, func(bx *box) bool {
			if time.Since(bx.created) > warmMaxIdle {
				old = append(old, bx)
				return true
			}
			return false
		})
	}
	w.mu.Unlock()
	for _, bx := range old {
		_ = w.b.remove(bx.id)
	}
}

// removed notes that a container handed to a run is gone.
func (w *warmPools) removed(id string) {
	w.mu.Lock()
	delete(w.taken, id)
	w.mu.Unlock()
}

// held reports whether a container labelled warm is one the pool holds: waiting, or
// being made, rather than handed to a run.
func (w *warmPools) held(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.taken[id]
}

// close waits for the containers being made and removes every waiting one.
func (w *warmPools) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.fill.Wait()
	w.mu.Lock()
	var all []*box
	for _, p := range w.pools {
		all = append(all, p.idle...)
		p.idle = nil
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, bx := range all {
		wg.Go(func() { _ = w.b.remove(bx.id) })
	}
	wg.Wait()
}

// WarmSize is how many started containers wait for a run, over every image (the
// server's runbox_warm_pool_size).
func (b *Backend) WarmSize() int {
	w := b.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.pools {
		n += len(p.idle)
	}
	return n
}
