//go:build race

package progress

// raceEnabled: the race detector makes sync.Pool drop objects at random, so regexp
// machines are not reused and allocation counts mean nothing.
const raceEnabled = true
