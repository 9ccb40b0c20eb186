// Command runbox runs programs and untrusted code with hard limits. See README.md.
package main

import (
	"context"
	"os"

	"github.com/runboxhq/runbox/internal/cli"
	"github.com/runboxhq/runbox/internal/iostreams"
)

func main() {
	// Signals are each command's business: exec forwards them to its child's tree.
	os.Exit(cli.Main(context.Background(), os.Args[1:], iostreams.System()))
}
