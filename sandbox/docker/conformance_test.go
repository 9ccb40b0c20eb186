package docker_test

import (
	"testing"

	"github.com/runboxhq/runbox/sandbox/docker"
	"github.com/runboxhq/runbox/sandbox/sandboxtest"
)

// TestConformance runs the hostile catalogue (../shared/HOSTILE.md) against the
// Docker backend with warm containers, as `runbox run --backend docker` uses it; runs
// whose tmpfs limits differ from the defaults get cold ones.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, newBackend(t, docker.Config{Warm: docker.DefaultWarm}))
}
