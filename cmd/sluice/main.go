// Command sluice is the platform binary. This stock build carries the
// example applications; a user's own main links the SDK, registers its
// deployments and calls cli.Run the same way.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-serve/sluice/examples/bench"
	"github.com/sluice-serve/sluice/examples/chain"
	"github.com/sluice-serve/sluice/examples/hello"
	"github.com/sluice-serve/sluice/examples/stream"
	"github.com/sluice-serve/sluice/examples/tensors"
	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
)

func main() {
	level := slog.LevelInfo
	if os.Getenv("SLUICE_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log) // serve.Logger and libraries log through it
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg, err := registry()
	if err == nil {
		err = cli.Run(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Log: log, Registry: reg})
	}
	if code := cli.ExitCode(err); code != 0 {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		stop()
		os.Exit(code)
	}
}

// registry holds the example applications, and the benchmark's handler
// for YAML specs to name.
func registry() (*serve.Registry, error) {
	apps := append([]*serve.Application{hello.App(), chain.App(), stream.App()}, tensors.Apps()...)
	return serve.NewRegistry(apps, bench.Noop)
}
