package proc

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCaptureMatchesReference feeds random write sizes and checks head and tail against
// the plain definition, both mid-stream (snapshot) and at the end (final).
func TestCaptureMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1, 2, 3, 10, 4096, 10001} {
		for trial := range 50 {
			c := newCapture(int64(limit))
			var all []byte
			for range rng.IntN(40) {
				p := make([]byte, rng.IntN(3*limit+2))
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				c.Write(p)
				all = append(all, p...)
				if got, want := c.snapshot(), reference(all, limit); !bytes.Equal(got, want) {
					t.Fatalf("limit %d trial %d: snapshot after %d bytes differs", limit, trial, len(all))
				}
			}
			got, truncated, total := c.final()
			if want := reference(all, limit); !bytes.Equal(got, want) || truncated != (len(all) > limit) || total != int64(len(all)) {
				t.Fatalf("limit %d trial %d: final differs (truncated %v, total %d of %d)", limit, trial, truncated, total, len(all))
			}
		}
	}
}

func reference(all []byte, limit int) []byte {
	if len(all) <= limit {
		return all
	}
	half := limit / 2
	return append(append([]byte{}, all[:half]...), all[len(all)-(limit-half):]...)
}
