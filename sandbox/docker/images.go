package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ensureImage checks that the engine has image, pulling it when Config.Pull allows.
// Images found are remembered; one that goes missing is forgotten when a create fails.
func (b *Backend) ensureImage(ctx context.Context, image string) error {
	b.imagesMu.Lock()
	ok := b.images[image]
	b.imagesMu.Unlock()
	if ok {
		return nil
	}
	_, err := b.cli.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) && b.cfg.Pull {
		err = b.pull(ctx, image)
	}
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return missingImage(image, err)
		}
		if client.IsErrConnectionFailed(err) {
			return unreachable(b.cli.DaemonHost(), err)
		}
		return fmt.Errorf("docker: inspect image %s: %w", image, err)
	}
	b.imagesMu.Lock()
	b.images[image] = true
	b.imagesMu.Unlock()
	return nil
}

func (b *Backend) forgetImage(image string) {
	b.imagesMu.Lock()
	delete(b.images, image)
	b.imagesMu.Unlock()
}

// pull pulls image, as asked with Config.Pull.
func (b *Backend) pull(ctx context.Context, image string) error {
	b.log.Info("docker: pulling image", "image", image)
	resp, err := b.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("docker: pull %s: %w", image, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return fmt.Errorf("docker: pull %s: %w", image, err)
	}
	_, err = b.cli.ImageInspect(ctx, image)
	return err
}
