// Command haechi catches unauthorized access to customer personal data.
// See the README and `haechi --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/haechi-sec/haechi/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
