// Package sandboxtest is the conformance suite every sandbox backend must pass: each row
// of the hostile catalogue (busy loops, fork bombs, memory hogs, floods of output, escapes
// from the file system, the network and the kernel's surface, misclassified failures)
// becomes a subtest, run in Python, JavaScript and Bash where the row applies.
//
// A backend runs it from a test of its own package:
//
//	func TestConformance(t *testing.T) {
//		b, err := mybackend.New(context.Background(), mybackend.Config{})
//		if err != nil {
//			t.Skipf("backend unavailable: %v", err)
//		}
//		t.Cleanup(func() { b.Close() })
//		sandboxtest.Run(t, b)
//	}
//
// Subtests are named after the rows ("A1_busy_loop/python"), so -run selects one.
//
// # Host invariants
//
// After every case Run checks the host: that a canary run of /bin/true is ok, that the
// backend's [Leftovers] (when it implements it) is empty, that the test process has no
// new live descendant (zombies are ignored: PID 1 of some machines does not reap; the
// processes a [Holder] keeps on purpose, such as warm boxes, are not counted), and
// that /proc/self/mountinfo of the test process gained no mount. It only looks at what
// the run can be blamed for, never at global host state, so other test binaries may run
// at the same time. A process the check finds is killed, so that one leak does not
// spoil the cases after it.
//
// The test that calls Run must not be parallel and must not run beside parallel tests
// of its own binary that start processes: Run sets an environment variable (with
// t.Setenv) that no box may see, and counts the test process's descendants. Cases run
// one after the other; a few run several boxes at once on purpose.
//
// Rows that cannot be exercised through [sandbox.Backend] are left out with the reason
// next to the case list (see excluded in sandboxtest.go); the backend's own tests or the
// server's must cover them.
//
// The suite needs the host's /usr/bin/python3, /usr/bin/node and /bin/bash in the box,
// takes about a minute against a fast backend, and is Linux-only.
package sandboxtest
