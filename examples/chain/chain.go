// Package chain passes one deployment's unresolved result straight into
// another: the Adder's replica sends its sum to the Multiplier directly,
// never back through the Ingress.
package chain

import (
	"context"

	"github.com/sluice-serve/sluice/platform/serve"
)

// Adder adds its increment.
type Adder struct{ increment int }

// NewAdder is the Adder's constructor.
func NewAdder(increment int) *Adder { return &Adder{increment: increment} }

// Call adds.
func (a *Adder) Call(_ context.Context, x int) (int, error) { return x + a.increment, nil }

// Multiplier multiplies by its factor.
type Multiplier struct{ multiple int }

// NewMultiplier is the Multiplier's constructor.
func NewMultiplier(multiple int) *Multiplier { return &Multiplier{multiple: multiple} }

// Call multiplies.
func (m *Multiplier) Call(_ context.Context, x int) (int, error) { return x * m.multiple, nil }

// Ingress composes the two without awaiting the sum.
type Ingress struct {
	adder, multiplier *serve.Handle[int, int]
}

// NewIngress takes handles to both.
func NewIngress(adder, multiplier *serve.Handle[int, int]) *Ingress {
	return &Ingress{adder: adder, multiplier: multiplier}
}

// Call computes (x + increment) * multiple.
func (i *Ingress) Call(ctx context.Context, x int) (int, error) {
	sum := i.adder.Remote(ctx, x)
	return i.multiplier.RemoteFuture(ctx, sum).Result(ctx)
}

// The deployments.
var (
	AdderDeployment      = serve.Type[int, int]("Adder", NewAdder)
	MultiplierDeployment = serve.Type[int, int]("Multiplier", NewMultiplier)
	IngressDeployment    = serve.Type[int, int]("Ingress", NewIngress)
)

// App is the chain application at /chain: (x + 1) * 2.
func App() *serve.Application {
	return serve.MustApp("chain", "/chain",
		IngressDeployment.Bind(AdderDeployment.Bind(1), MultiplierDeployment.Bind(2)))
}
