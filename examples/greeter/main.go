// Command greeter is a user's own binary of Sluice deployments, in its own
// module: it links the SDK, not the platform's examples, and is published
// to the registry as a code bundle (`sluice code push greeter ./greeter`)
// that applications name (`code: greeter@production`). The platform's own
// `sluice` binary knows nothing of it.
//
//	go build -ldflags "-X main.greeting=Hello" -o greeter .
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
)

// greeting is set at build time, so two builds are two versions.
var greeting = "Hello"

// Greeter greets a name.
var Greeter = serve.Func("Greeter", func(_ context.Context, name string) (string, error) {
	return greeting + ", " + name, nil
})

// Shouter upper-cases what the greeter says: a second deployment of the
// bundle, reached by a handle.
type shouter struct{ greeter *serve.Handle[string, string] }

func newShouter(greeter *serve.Handle[string, string]) *shouter { return &shouter{greeter: greeter} }

func (s *shouter) Call(ctx context.Context, name string) (string, error) {
	g, err := s.greeter.Remote(ctx, name).Result(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s!", g), nil
}

// Shouter calls the Greeter.
var Shouter = serve.Type[string, string]("Shouter", newShouter)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	reg, err := serve.NewRegistry(nil, Greeter, Shouter)
	if err != nil {
		fmt.Fprintln(os.Stderr, "greeter:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cli.Run(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Log: log, Registry: reg})
	if err != nil {
		fmt.Fprintln(os.Stderr, "greeter:", err)
	}
	os.Exit(cli.ExitCode(err))
}
