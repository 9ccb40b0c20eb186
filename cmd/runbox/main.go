// Command runbox runs programs and untrusted code with hard limits. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/runboxhq/runbox/internal/cli"
	"github.com/runboxhq/runbox/internal/iostreams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], iostreams.System())
	stop()
	os.Exit(code)
}
