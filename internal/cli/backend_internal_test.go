package cli

import "testing"

// TestReadyRuns: runbox run keeps runs made ahead only on the CPUs its own -j leaves.
func TestReadyRuns(t *testing.T) {
	for _, c := range []struct{ jobs, cpus, want int }{
		{0, 2, 0},  // not known (serve): the backend's default
		{1, 2, 1},  // one CPU left
		{1, 8, 7},  // seven
		{2, 2, -1}, // every CPU busy: none
		{16, 2, -1},
	} {
		if got := readyRuns(c.jobs, c.cpus); got != c.want {
			t.Errorf("readyRuns(%d, %d) = %d, want %d", c.jobs, c.cpus, got, c.want)
		}
	}
}
