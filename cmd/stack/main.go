// Command stack takes an infrastructure repository from zero to running
// services: it fetches and verifies every upstream source, builds every tool
// and image, serves git, registry and CI, and deploys to the environments.
//
// This package only parses arguments; the work is done in internal/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stack: %v\n", err)
		os.Exit(1)
	}
}
