package proc

import "testing"

// The v2 usage files are parsed by key; this host has cgroup v1, so the v2 formats
// are checked here against samples from cgroup v2 kernels.
func TestKeyedValue(t *testing.T) {
	cpuStat := []byte("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 0\n")
	events := []byte("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
	v1oom := []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	for _, tc := range []struct {
		in   []byte
		key  string
		want int64
		ok   bool
	}{
		{cpuStat, "usage_usec", 123456, true},
		{events, "oom_kill", 1, true},
		{events, "oom", 2, true},
		{v1oom, "oom_kill", 3, true},
		{v1oom, "missing", 0, false},
		{[]byte("oom_kill x\n"), "oom_kill", 0, false},
		{nil, "oom_kill", 0, false},
	} {
		if got, ok := keyedValue(tc.in, tc.key); got != tc.want || ok != tc.ok {
			t.Errorf("keyedValue(%q, %q) = %d, %v; want %d, %v", tc.in, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}
