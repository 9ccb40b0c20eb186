package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

const (
	// parallelRuns is how many runs I1 starts at once.
	parallelRuns = 50
	// parallelWall is their wall time limit: 50 boxes on a small machine start slowly.
	parallelWall = 60 * time.Second
	// cancelAfter is when I3 cancels the run's context.
	cancelAfter = 500 * time.Millisecond
)

func (s *suite) harnessCases() []*hostileCase {
	return []*hostileCase{
		{
			id: "I1", name: "parallel_runs", variants: []string{"mixed"},
			multi: func(t *testing.T, _ string) { s.parallelRuns(t) },
		},
		{
			id: "I3", name: "context_cancel_kills_the_run", variants: langs,
			// Timeouts are the backend's to enforce: the wall time limit cases (A)
			// run with a context that never ends. Here the caller goes away instead,
			// and the run must end at once and completely.
			multi: s.cancelled,
		},
	}
}

// i1Code is I1's program: @@I@@ is the run's index.
var i1Code = map[string]string{
	python: `import os, time
i = os.environ["SBT_INDEX"]
for d in ["/tmp", "/work"]:
    with open(d + "/idx", "w") as f:
        f.write(i)
time.sleep(0.2)
got = [open(d + "/idx").read() for d in ["/tmp", "/work"]]
print("run %s code=@@I@@ tmp=%s work=%s" % (i, got[0], got[1]))
`,
	javascript: `const fs = require('fs');
const i = process.env.SBT_INDEX;
for (const d of ['/tmp', '/work']) fs.writeFileSync(d + '/idx', i);
setTimeout(() => {
  const got = ['/tmp', '/work'].map((d) => fs.readFileSync(d + '/idx', 'utf8'));
  console.log('run ' + i + ' code=@@I@@ tmp=' + got[0] + ' work=' + got[1]);
}, 200);
`,
	bash: `i=$SBT_INDEX
for d in /tmp /work; do printf %s "$i" >"$d/idx"; done
sleep 0.2
echo "run $i code=@@I@@ tmp=$(cat /tmp/idx) work=$(cat /work/idx)"
`,
}

// parallelRuns (I1) starts 50 runs at once, of the three languages in turn, each
// writing its index to /tmp and the work directory and reading it back after a pause.
func (s *suite) parallelRuns(t *testing.T) {
	code := i1Code
	outs := make([]*outcome, parallelRuns)
	var wg sync.WaitGroup
	for i := range parallelRuns {
		l := langs[i%len(langs)]
		idx := strconv.Itoa(i)
		spec := sandbox.Spec{
			Language: l,
			Code:     strings.ReplaceAll(code[l], "@@I@@", idx),
			Env:      map[string]string{"SBT_INDEX": idx},
			Limits:   sandbox.Limits{WallTime: parallelWall},
		}
		wg.Go(func() { outs[i] = s.exec(t.Context(), spec) })
	}
	wg.Wait()
	for i, o := range outs {
		want := fmt.Sprintf("run %d code=%d tmp=%d work=%d\n", i, i, i, i)
		if !s.checkCommon(t, o) {
			continue
		}
		if o.Status != sandbox.StatusOK || o.Stdout != want {
			t.Errorf("run %d (%s) of %d at once: status %s stdout %q, want ok and %q\n%s",
				i, o.variant, parallelRuns, o.Status, o.Stdout, want, describe(o))
		}
	}
}

// cancelled (I3) cancels a run's context while it sleeps: the run must end within the
// slack, as a wall time out, with everything gone.
func (s *suite) cancelled(t *testing.T, v string) {
	code := sleeper
	ctx, cancel := context.WithCancel(t.Context())
	timer := time.AfterFunc(cancelAfter, cancel)
	defer timer.Stop()
	defer cancel()
	o := s.exec(ctx, sandbox.Spec{Language: v, Code: code[v], Limits: sandbox.Limits{WallTime: 30 * time.Second}})
	if o.Result != nil && errors.Is(o.err, context.Canceled) {
		// Backend.Run does not say whether a cancelled run also returns ctx's
		// error; both are fine, and the common checks want none.
		o.err = nil
	}
	// The sleeper prints first: with nothing printed, the cancel may have come before
	// the box started (a Docker container on a loaded machine), with no usage to report.
	o.unstarted = o.Result != nil && o.Stdout == ""
	if !s.checkCommon(t, o) {
		t.FailNow()
	}
	if o.Status != sandbox.StatusTimeout || o.Limit != "wall" {
		t.Errorf("status %s limit %q after the context was cancelled, want timeout \"wall\"\n%s", o.Status, o.Limit, describe(o))
	}
	if max := cancelAfter + timeoutSlack; o.elapsed > max {
		t.Errorf("Run took %v after a cancel at %v, want at most %v", o.elapsed, cancelAfter, max)
	}
}
