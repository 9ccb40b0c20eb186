package native_test

import (
	"testing"

	"github.com/runboxhq/runbox/sandbox/sandboxtest"
)

// TestConformance runs the hostile catalogue (../shared/HOSTILE.md) against the
// native backend as it runs by default (forked from a warm template's zygote),
// checking the host after every case.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, newWarmBackend(t))
}

// TestConformanceCold runs the catalogue against boxes built for each run (warm runs
// off, the fallback where no zygote can be started).
func TestConformanceCold(t *testing.T) {
	sandboxtest.Run(t, newColdBackend(t))
}
