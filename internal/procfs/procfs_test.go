package procfs_test

import (
	"os"
	"testing"

	"github.com/runboxhq/runbox/internal/procfs"
)

func TestReadStat(t *testing.T) {
	st, err := procfs.ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPid() != os.Getppid() || st.StartTime() == 0 || st.Comm == "" || st.Fields[0] != "R" {
		t.Errorf("%+v, ppid %d start %d", st, st.PPid(), st.StartTime())
	}
	if _, err := procfs.ReadStat(0); err == nil {
		t.Error("pid 0 was read")
	}
}
