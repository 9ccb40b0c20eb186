package sandboxtest

import (
	"slices"
	"testing"

	"github.com/runboxhq/runbox/sandbox"
)

// cases returns every case, in the catalogue's order, after a first one that only says
// hello: if it fails, the rest will not tell much.
func (s *suite) cases() []*hostileCase {
	hello := &hostileCase{
		id: "00", name: "hello",
		code:    rawProgs("print(\"hello\")\n", "console.log('hello');\n", "echo hello\n"),
		command: []string{"/bin/echo", "hello"},
		check: func(t *testing.T, o *outcome) {
			wantExit(t, o, sandbox.StatusOK, 0)
			wantStdout(t, o, "hello\n")
			if o.Stderr != "" {
				t.Errorf("stderr %q, want none", o.Stderr)
			}
		},
	}
	return slices.Concat([]*hostileCase{hello},
		s.timeCases(), s.memoryCases(), s.processCases(), s.outputCases(), s.filesystemCases(),
		s.networkCases(), s.privilegeCases(), s.envCases(), s.harnessCases(), s.classificationCases())
}
