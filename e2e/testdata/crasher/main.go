// Command crasher is an SDK binary whose replicas die at start: it
// describes itself (a Greeter, like examples/greeter), so a push and a
// deploy accept it, but its replica command exits at once. The bundle
// tests deploy it as a new version to see the roll stop and the old
// version keep serving.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
)

var greeter = serve.Func("Greeter", func(_ context.Context, name string) (string, error) { return "never, " + name, nil })

type shouter struct{ greeter *serve.Handle[string, string] }

func (s *shouter) Call(ctx context.Context, name string) (string, error) {
	return s.greeter.Remote(ctx, name).Result(ctx)
}

var shouterD = serve.Type[string, string]("Shouter", func(g *serve.Handle[string, string]) *shouter { return &shouter{g} })

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replica" {
		fmt.Fprintln(os.Stderr, "crasher: cannot load the model: out of memory")
		os.Exit(3)
	}
	reg, err := serve.NewRegistry(nil, greeter, shouterD)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = cli.Run(context.Background(), os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), Registry: reg})
	os.Exit(cli.ExitCode(err))
}
