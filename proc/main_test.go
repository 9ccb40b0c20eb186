package proc_test

import (
	"context"
	"testing"
	"time"

	"github.com/runboxhq/runbox/internal/testenv"
	"github.com/runboxhq/runbox/proc"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// helper returns a Cmd that runs the test binary as the named helper child.
func helper(t testing.TB, name string, args ...string) *proc.Cmd {
	t.Helper()
	argv, env := testenv.Command(t, name, args...)
	c := &proc.Cmd{Path: argv[0], Args: argv, Env: env}
	return c
}

// run runs c and fails the test on a start error.
func run(t testing.TB, c *proc.Cmd) *proc.Result {
	t.Helper()
	res, err := c.Run(context.Background())
	if err != nil {
		t.Fatalf("Run(%v): %v", c.Args, err)
	}
	checkExclusive(t, res)
	return res
}

// checkExclusive asserts the invariant that a result has an exit code or a signal, never both.
func checkExclusive(t testing.TB, res *proc.Result) {
	t.Helper()
	if res.Signal != 0 && res.ExitCode != -1 {
		t.Errorf("result has both signal %v and exit code %d", res.Signal, res.ExitCode)
	}
	if res.Signal == 0 && res.ExitCode < 0 && res.Status != proc.StatusStartError {
		t.Errorf("result has neither signal nor exit code: %+v", res)
	}
}

// within fails the test when d exceeds limit; used for "never hangs" bounds, which are
// behaviour (a call returns), not speed targets.
func within(t testing.TB, what string, d, limit time.Duration) {
	t.Helper()
	if d > limit {
		t.Errorf("%s took %v, want under %v", what, d, limit)
	}
}
