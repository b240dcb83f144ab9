// Command gostreams is an SDK binary of streaming deployments that graphs
// mix with Python ones: Count streams numbers and, asked for a negative
// count, fails after its items; Relay streams what the deployment its
// handle names streams, item by item, and ends with its error.
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

// count yields 0, 10, 20, ... (|n| items); for n < 0 it then fails.
var count = serve.StreamFunc("GoCount", func(_ context.Context, n int, send func(int) error) error {
	k := max(n, -n)
	for i := range k {
		if err := send(10 * i); err != nil {
			return err
		}
	}
	if n < 0 {
		return fmt.Errorf("go count failed after %d items", k)
	}
	return nil
})

type relay struct{ source *serve.Handle[int, int] }

// Stream yields each item of the source's stream plus one, as it comes;
// the source's error ends this stream too.
func (r *relay) Stream(ctx context.Context, n int, send func(int) error) error {
	for v, err := range r.source.Stream(ctx, n) {
		if err != nil {
			return fmt.Errorf("relayed: %w", err)
		}
		if err := send(v + 1); err != nil {
			return err
		}
	}
	return nil
}

var relayD = serve.StreamType[int, int]("GoRelay", func(source *serve.Handle[int, int]) *relay { return &relay{source} })

func main() {
	reg, err := serve.NewRegistry(nil, count, relayD)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gostreams:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cli.Run(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), Registry: reg})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gostreams:", err)
	}
	os.Exit(cli.ExitCode(err))
}
