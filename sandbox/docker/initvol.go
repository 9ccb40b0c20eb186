package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// The init is this very binary (its package boxinit takes over when the container
// starts it). It goes into a volume named after its hash, once per engine and build,
// through the engine's copy API into a helper container that is never started; runs
// mount the volume read-only. A marker file written after the binary says the copy
// finished.
const (
	initVolumePrefix = "runbox-init-"
	labelInit        = "io.runbox.init" // on the volume: the binary's hash
	initReady        = "ready"
)

// initVolume returns the volume holding this binary, filling it if needed.
func (b *Backend) initVolume(ctx context.Context) (string, error) {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", fmt.Errorf("docker: open runbox's own binary: %w", err)
	}
	defer exe.Close()
	h := sha256.New()
	size, err := io.Copy(h, exe)
	if err != nil {
		return "", fmt.Errorf("docker: read runbox's own binary: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	name := initVolumePrefix + sum[:16]

	if _, err := b.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: map[string]string{labelInit: sum}}); err != nil {
		return "", fmt.Errorf("docker: create the init volume: %w", err)
	}
	image, err := b.anyImage(ctx)
	if err != nil {
		return "", err
	}
	helper, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: image, Entrypoint: []string{initPath}, Cmd: []string{},
			Labels: map[string]string{labelOwner: b.owner, labelInstance: b.instance, labelRun: "init",
				labelDeadline: fmt.Sprint(time.Now().Add(deadlineSlack).Unix())}},
		HostConfig: &container.HostConfig{NetworkMode: "none", LogConfig: container.LogConfig{Type: "none"},
			Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: initDir}}},
	})
	if err != nil {
		return "", fmt.Errorf("docker: create the container that fills the init volume: %w", err)
	}
	defer b.remove(helper.ID)
	if _, err := b.cli.ContainerStatPath(ctx, helper.ID, client.ContainerStatPathOptions{Path: initDir + "/" + initReady}); err == nil {
		return name, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("docker: look into the init volume: %w", err)
	}
	if _, err := exe.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: "init", Mode: 0o755, Size: size, Typeflag: tar.TypeReg, ModTime: time.Now()})
		if err == nil {
			_, err = io.CopyN(tw, exe, size)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: initReady, Mode: 0o644, Size: int64(len(sum)), Typeflag: tar.TypeReg, ModTime: time.Now()})
		}
		if err == nil {
			_, err = io.Copy(tw, bytes.NewReader([]byte(sum)))
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	if _, err := b.cli.CopyToContainer(ctx, helper.ID, client.CopyToContainerOptions{DestinationPath: initDir, Content: pr}); err != nil {
		pr.CloseWithError(err)
		return "", fmt.Errorf("docker: copy the init into its volume: %w", err)
	}
	b.log.Debug("docker: init volume filled", "volume", name, "bytes", size)
	return name, nil
}

// anyImage returns an image the helper container can be made of: the default, or any
// the engine has. The helper is never started, so any image will do.
func (b *Backend) anyImage(ctx context.Context) (string, error) {
	if err := b.ensureImage(ctx, b.cfg.Image); err == nil {
		return b.cfg.Image, nil
	}
	for _, img := range b.cfg.Images {
		if err := b.ensureImage(ctx, img); err == nil {
			return img, nil
		}
	}
	return "", missingImage(b.cfg.Image, errNoImage)
}

// static reports whether this binary is statically linked, so that its init runs in
// any image; a cgo build needs a compatible C library in the image.
func static() bool {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

func staticHint() string {
	if static() {
		return ""
	}
	return "; this runbox is dynamically linked (a cgo build), so its init also needs the host's C library in the image: build runbox with CGO_ENABLED=0"
}
