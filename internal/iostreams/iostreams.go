// Package iostreams bundles the standard streams of the command line, with a test
// constructor, so commands never reach for os.Stdin/os.Stdout directly.
package iostreams

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams are a program's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// InFile, OutFile and ErrFile are the streams as files when they are, so that a
	// child can be handed them directly; nil otherwise.
	InFile, OutFile, ErrFile *os.File

	outTTY, errTTY bool
}

// System returns the process's own streams.
func System() *IOStreams {
	return &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		InFile: os.Stdin, OutFile: os.Stdout, ErrFile: os.Stderr,
		outTTY: term.IsTerminal(int(os.Stdout.Fd())),
		errTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
}

// Test returns streams backed by buffers: input to fill, and the two outputs to read.
func Test() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsTerminal reports whether stdout and stderr are both terminals.
func (s *IOStreams) IsTerminal() bool { return s.outTTY && s.errTTY }

// IsStderrTerminal reports whether stderr is a terminal: where progress is drawn.
func (s *IOStreams) IsStderrTerminal() bool { return s.errTTY }
