package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/streams"
)

// Cmd tells the Faults deployment how to misbehave.
type Cmd struct {
	Echo    string `json:"echo"`
	Panic   bool   `json:"panic"`
	SleepMS int    `json:"sleep_ms"`
	Fail    string `json:"fail"`
}

// faults is a deployment with every failure mode a handler can have.
var faults = serve.Func("Faults", func(ctx context.Context, c Cmd) (string, error) {
	if c.SleepMS > 0 {
		select {
		case <-time.After(time.Duration(c.SleepMS) * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if c.Panic {
		panic("asked to panic")
	}
	if c.Fail != "" {
		return "", streams.Errorf(streams.CodeInvalidArgument, "asked to fail: %s", c.Fail)
	}
	return c.Echo, nil
}, serve.MaxOngoingRequests(64))

// Echo is a plain function used in pipeline specs.
var echo = serve.Func("Echo", func(_ context.Context, s string) (string, error) {
	return s, nil
})

func faultsApp() *serve.Application {
	return serve.MustApp("faults", "/faults", faults.Bind())
}

// upper tags a string, for dataflow pipelines declared in YAML.
var upper = serve.Type[string, string]("Tag", func(tag string) *tagger { return &tagger{tag: tag} })

type tagger struct{ tag string }

func (t *tagger) Call(_ context.Context, s string) (string, error) {
	return fmt.Sprintf("%s[%s]", t.tag, s), nil
}
