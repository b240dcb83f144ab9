package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-serve/sluice/gateway/oip"
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
		serve.Logger(ctx).Info("failing as asked", "reason", c.Fail)
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

// batchSizer answers each input with the size of the batch it ran in.
var batchSizer = serve.BatchFunc("BatchSizer", func(_ context.Context, ins []string) ([]string, error) {
	outs := make([]string, len(ins))
	for i, in := range ins {
		outs[i] = fmt.Sprintf("%s/%d", in, len(ins))
	}
	return outs, nil
})

// greeterBuilt counts constructions: a reconfigure must not rebuild.
var greeterBuilt atomic.Int64

type greeter struct {
	mu       sync.Mutex
	greeting string
}

func (g *greeter) Call(_ context.Context, name string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.greeting + " " + name, nil
}

func (g *greeter) Reconfigure(_ context.Context, cfg json.RawMessage) error {
	var c struct {
		Greeting string `json:"greeting"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	g.mu.Lock()
	g.greeting = c.Greeting
	g.mu.Unlock()
	return nil
}

var greeterD = serve.Type[string, string]("Greeter", func() *greeter {
	greeterBuilt.Add(1)
	return &greeter{greeting: "Hello"}
})

// fan calls Faults twice without awaiting in between.
type fan struct{ faults *serve.Handle[Cmd, string] }

func (f *fan) Call(ctx context.Context, sleepMS int) (string, error) {
	a := f.faults.Remote(ctx, Cmd{Echo: "a", SleepMS: sleepMS})
	b := f.faults.Remote(ctx, Cmd{Echo: "b", SleepMS: sleepMS})
	ra, err := a.Result(ctx)
	if err != nil {
		return "", err
	}
	rb, err := b.Result(ctx)
	return ra + rb, err
}

var fanD = serve.Type[int, string]("Fan", func(h *serve.Handle[Cmd, string]) *fan { return &fan{faults: h} })

func fanApp() *serve.Application { return serve.MustApp("fan", "/fan", fanD.Bind(faults.Bind())) }

// modelCaller calls a model deployment through a handle, naming the model
// with serve.WithModel: y = model(x).
type modelCaller struct {
	models *serve.Handle[*oip.InferRequest, *oip.InferResponse]
}

func (c *modelCaller) Call(ctx context.Context, in struct {
	Model string  `json:"model"`
	X     float32 `json:"x"`
}) (float32, error) {
	req := &oip.InferRequest{Inputs: []oip.Tensor{oip.NewFP32("x", []int64{1, 1}, []float32{in.X})}}
	resp, err := c.models.Remote(serve.WithModel(ctx, in.Model, ""), req).Result(ctx)
	if err != nil {
		return 0, err
	}
	ys, err := resp.Outputs[0].Float32s()
	if err != nil || len(ys) != 1 {
		return 0, fmt.Errorf("model %s answered %v (%v)", in.Model, ys, err)
	}
	return ys[0], nil
}

var modelCallerD = serve.Type[struct {
	Model string  `json:"model"`
	X     float32 `json:"x"`
}, float32]("ModelCaller", func(m *serve.Handle[*oip.InferRequest, *oip.InferResponse]) *modelCaller {
	return &modelCaller{models: m}
})
