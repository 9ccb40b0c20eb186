package lines_test

import (
	"fmt"

	"github.com/runboxhq/runbox/internal/lines"
)

func Example() {
	kinds := map[lines.Kind]string{
		lines.Full:         "line",
		lines.Update:       "progress",
		lines.Partial:      "partial",
		lines.Unterminated: "unterminated",
	}
	s := lines.New(16, func(l lines.Line) {
		fmt.Printf("%-12s %q\n", kinds[l.Kind], l.Text)
	})
	// Child output as reads from a pipe might deliver it: chunk boundaries
	// fall anywhere, even inside a "\r\n".
	for _, chunk := range []string{
		"fetching\r", "\n10%\r50", "%\r100%\nthis line is longer", " than sixteen bytes\nexit",
	} {
		s.Write([]byte(chunk))
	}
	s.Flush() // at EOF
	// Output:
	// line         "fetching"
	// progress     "10%"
	// progress     "50%"
	// line         "100%"
	// partial      "this line is lon"
	// partial      "ger than sixteen"
	// line         " bytes"
	// unterminated "exit"
}
