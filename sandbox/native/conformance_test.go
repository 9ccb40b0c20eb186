package native_test

import (
	"testing"

	"github.com/runboxhq/runbox/sandbox/sandboxtest"
)

// TestConformance runs the hostile catalogue (../shared/HOSTILE.md) against the
// native backend, checking the host after every case.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, newBackend(t))
}
