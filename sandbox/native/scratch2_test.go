package native_test

import (
	"context"
	"testing"
	"time"

	"github.com/runboxhq/runbox/sandbox"
)

func TestScratch2(t *testing.T) {
	b := newBackend(t)
	for range 6 {
		time.Sleep(50 * time.Millisecond)
		s := time.Now()
		res, _ := b.Run(context.Background(), sandbox.Spec{Command: []string{"/bin/true"}})
		t.Logf("%v\n%s", time.Since(s), res.Stderr)
	}
}
