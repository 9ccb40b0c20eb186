package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/runboxhq/runbox/internal/iostreams"
	"github.com/runboxhq/runbox/internal/server"
	"github.com/runboxhq/runbox/sandbox"
)

// MCPOptions are the settings of `runbox mcp`.
type MCPOptions struct {
	IO *iostreams.IOStreams
	backendFlags
	Running int
	MaxWall time.Duration
}

// NewMCPCmd returns `runbox mcp`: an MCP server on stdin and stdout, for an agent that
// starts runbox as its tool server. runF replaces the run for tests; nil runs it.
func NewMCPCmd(ios *iostreams.IOStreams, runF func(context.Context, *MCPOptions) error) *cobra.Command {
	opts := &MCPOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "mcp [flags]",
		Short: "Serve the MCP tools run_code and list_languages on stdin and stdout",
		Long: `Serve MCP (the Model Context Protocol) on stdin and stdout, for an agent that starts
runbox as a tool server: the tools run_code (language, code, stdin, timeout_ms; one
fresh sandbox per call) and list_languages. Logs go to stderr. The same tools are served
over HTTP at /mcp by runbox serve.

An agent's configuration, for example:

  {"mcpServers": {"runbox": {"command": "runbox", "args": ["mcp"]}}}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return mcpRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	opts.backendFlags.add(f)
	f.IntVar(&opts.Running, "running", 0, "runs at once (default: the number of CPUs)")
	f.DurationVar(&opts.MaxWall, "max-timeout", time.Minute, "largest timeout_ms a call may ask")
	return cmd
}

func mcpRun(ctx context.Context, opts *MCPOptions) error {
	if opts.MaxWall <= 0 || opts.MaxWall > sandbox.MaxWallTime {
		return usagef("--max-timeout %v: want (0, %v]", opts.MaxWall, sandbox.MaxWallTime)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	backend, err := opts.open(ctx)
	if err != nil {
		return err
	}
	defer backend.Close()
	log := slog.New(slog.NewJSONHandler(opts.IO.ErrOut, nil))
	s, err := server.New(server.Config{Backend: backend, Running: opts.Running,
		MaxLimits: sandbox.Limits{WallTime: opts.MaxWall, CPUTime: opts.MaxWall}, Logger: log})
	if err != nil {
		return err
	}
	err = server.ServeMCPStdio(ctx, s, opts.IO.In, opts.IO.Out)
	// The runs still going were stopped; wait until they are gone.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Shutdown(sctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
