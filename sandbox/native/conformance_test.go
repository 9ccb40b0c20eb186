package native_test

import (
	"testing"

	"github.com/runboxhq/runbox/sandbox/native"
	"github.com/runboxhq/runbox/sandbox/sandboxtest"
)

// TestConformance runs the hostile catalogue (../shared/HOSTILE.md) against the
// native backend as it runs by default (forked from a warm template's zygote),
// checking the host after every case.
func TestConformance(t *testing.T) {
	b := newWarmBackend(t)
	sandboxtest.Run(t, b)
	// The JavaScript cases that can take a JavaScript ready run (default limits, no
	// stdin, no 2>&1) do, once the first has asked for them and they are made.
	st := native.JSReady(b)
	t.Logf("%d of %d eligible JavaScript runs took a JavaScript ready run", st.Taken, st.Eligible)
	if st.Eligible == 0 || st.Taken == 0 {
		t.Errorf("%d of %d eligible JavaScript runs took a JavaScript ready run", st.Taken, st.Eligible)
	}
}

// TestConformanceCold runs the catalogue against boxes built for each run (warm runs
// off, the fallback where no zygote can be started).
func TestConformanceCold(t *testing.T) {
	sandboxtest.Run(t, newColdBackend(t))
}
