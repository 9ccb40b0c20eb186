// Package testenv lets a test binary impersonate the child processes that tests of a
// subprocess library need, as the tests of Go's os/exec do, so that there are no
// shell-script fixtures.
//
// A package opts in from its TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// and a test asks for the command line and environment of a helper:
//
//	argv, env := testenv.Command(t, "flood", "1048576", "stdout")
//
// then starts argv with env through the library under test. [Names] lists the helpers;
// a package adds its own with [Register] from an init function.
//
// # Lifetime
//
// Every helper, and every process a helper starts, exits by itself with code 3 at the
// deadline carried in [EnvDeadline], which [Command] derives from the test's own
// deadline. After the tests, [Main] looks for processes tagged with [EnvOwner] that are
// still running and for children of the test binary that were never waited for; it
// reports and kills them and makes the test binary fail. A test that signals a process
// it did not start itself (a grandchild, a daemon) uses [WaitGone] to make sure it died.
//
// Exit codes of helpers: 0 success, 1 the helper failed to do its job (for example it
// could not start a grandchild), 2 bad arguments or an unknown helper, 3 the deadline
// passed, 99 crash survived its own signal.
//
// The package reads /proc and is Linux-only.
package testenv
