// Package cli implements the runbox command line: one cobra command per verb, each
// with an Options struct and a runF seam for tests. It renders results for people
// (plain output) or machines (--json); it holds no run logic of its own.
package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runboxhq/runbox/internal/iostreams"
)

// Exit codes of runbox itself, as GNU timeout and env use them.
const (
	ExitTimeout      = 124 // the command timed out
	ExitInternal     = 125 // runbox failed, or its usage was wrong
	ExitNotRunnable  = 126 // the command was found but could not be executed
	ExitNotFound     = 127 // the command was not found
	ExitInterrupted  = 130 // the command was interrupted (128+SIGINT)
	exitSignalOffset = 128 // killed by signal N: 128+N
)

// exitError carries an exit code out of a command, with an optional message for stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError is a wrong invocation: a bad flag or argument.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// Main runs the runbox command line with args (without the program name) and returns
// the process exit code.
func Main(ctx context.Context, args []string, ios *iostreams.IOStreams) int {
	root := NewRootCmd(ios)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitCode(err, ios)
}

func exitCode(err error, ios *iostreams.IOStreams) int {
	if err == nil {
		return 0
	}
	if ee, ok := errors.AsType[*exitError](err); ok {
		if ee.msg != "" {
			fmt.Fprintf(ios.ErrOut, "runbox: %s\n", ee.msg)
		}
		return ee.code
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		fmt.Fprintf(ios.ErrOut, "runbox: %v\nRun 'runbox --help' for usage.\n", err)
		return ExitInternal
	}
	fmt.Fprintf(ios.ErrOut, "runbox: %v\n", err)
	return ExitInternal
}

// NewRootCmd builds the runbox command tree on ios.
func NewRootCmd(ios *iostreams.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "runbox",
		Short: "Run programs and untrusted code with hard limits",
		Long: `runbox runs programs with hard timeouts that kill the whole process tree,
bounded output capture and a typed result.

Exit codes: the command's own; 128+N when a signal N ended it; 124 on timeout;
125 when runbox itself failed or was called wrongly; 126 when the command cannot be
executed; 127 when it is not found.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	root.AddCommand(NewExecCmd(ios, nil))
	root.AddCommand(NewMapCmd(ios, nil))
	root.AddCommand(NewRunCmd(ios, nil))
	root.AddCommand(NewDoctorCmd(ios, nil))
	root.AddCommand(NewServeCmd(ios, nil))
	root.AddCommand(NewMCPCmd(ios, nil))
	root.AddCommand(NewWorkerCmd(ios, nil))
	root.AddCommand(newNATSNodeCmd(ios))
	return root
}
