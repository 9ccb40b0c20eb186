package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// `runbox mcp` is an MCP server on stdio, as an agent starts it: the Go SDK's client
// runs it as a command, lists its tools and runs code.
func TestMCPStdio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cmd := exec.Command(os.Args[0], "__runbox", "mcp")
	cmd.Stderr = os.Stderr
	sess, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := sess.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	if !names["run_code"] || !names["list_languages"] {
		t.Fatalf("tools %v", names)
	}
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "run_code",
		Arguments: map[string]any{"language": "python", "code": "print(6*7)"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var out struct {
		Status string `json:"status"`
		Stdout string `json:"stdout"`
	}
	json.Unmarshal(b, &out)
	if res.IsError || out.Status != "ok" || out.Stdout != "42\n" {
		t.Errorf("run_code: error %v, %s", res.IsError, b)
	}
	if err := sess.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
		t.Errorf("runbox mcp ended with %v", cmd.ProcessState)
	}
}
