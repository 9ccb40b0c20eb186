package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/runboxhq/runbox/api"
	"github.com/runboxhq/runbox/sandbox"
)

// encodeJSON's shortcut for a run's result writes what json.Encoder would.
func TestEncodeResult(t *testing.T) {
	code := 3
	for _, res := range []*sandbox.Result{
		{},
		{RunID: "r", Backend: "native", Status: api.StatusRuntimeError, ExitCode: &code, Stdout: "<a> & \"b\"\n",
			Stderr: "\xff\xfe", WallTime: 1500 * time.Microsecond, Diagnostic: &api.Diagnostic{Type: "E", Message: "<x>"},
			Limits: api.Limits{WallTime: time.Second, Memory: 1 << 20, Network: api.NetworkNone}},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			t.Fatal(err)
		}
		got, err := encodeJSON(res)
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Errorf("encodeJSON = %s, %v\nwant %s", got, err, want.Bytes())
		}
	}
}
