package procfs_test

import (
	"os"
	"strings"
	"testing"

	"github.com/runboxhq/runbox/internal/procfs"
)

func TestReadStat(t *testing.T) {
	st, err := procfs.ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The state is the main thread's, which may sleep while this goroutine runs on
	// another thread: any state letter will do.
	if st.PPid() != os.Getppid() || st.StartTime() == 0 || st.Comm == "" || len(st.Fields[0]) != 1 || !strings.Contains("RSDTtWXZIPK", st.Fields[0]) {
		t.Errorf("%+v, ppid %d start %d", st, st.PPid(), st.StartTime())
	}
	if _, err := procfs.ReadStat(0); err == nil {
		t.Error("pid 0 was read")
	}
}
