package serve

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

type metricsKey struct{}

// WithMetrics returns ctx carrying the registry the handlers built with
// it (Registry.Build) register their own metrics in, through Metrics:
// their series are labelled with the replica's app, deployment and
// replica (its instance). The platform calls it for every replica it
// builds.
func WithMetrics(ctx context.Context, reg prometheus.Registerer, app, deployment, instance string) context.Context {
	if reg == nil {
		return ctx
	}
	return context.WithValue(ctx, metricsKey{}, prometheus.WrapRegistererWith(
		prometheus.Labels{"app": app, "deployment": deployment, "replica": instance}, reg))
}

// Metrics returns where the deployment being served registers its own
// metrics: the replica process's registry (served at its /metrics beside
// the platform's series), every series labelled with app, deployment and
// replica. Register a collector once per replica (the constructed
// value's sync.Once, say); registering it again fails as Prometheus's
// registries do. Outside a replica (a unit test calling the deployment
// directly) it is a registry of its own that nothing serves.
//
//	type Greeter struct {
//		once  sync.Once
//		greet *prometheus.CounterVec
//	}
//
//	func (g *Greeter) Call(ctx context.Context, name string) (string, error) {
//		g.once.Do(func() { serve.Metrics(ctx).MustRegister(g.greet) })
//		g.greet.WithLabelValues("en").Inc()
//		return "Hello " + name, nil
//	}
func Metrics(ctx context.Context) prometheus.Registerer {
	if sc, ok := ctx.Value(scopeKey{}).(*scope); ok && sc.rt != nil && sc.rt.metrics != nil {
		return sc.rt.metrics
	}
	return prometheus.NewRegistry()
}

// metricsOf is the registerer ctx carries (WithMetrics), or nil.
func metricsOf(ctx context.Context) prometheus.Registerer {
	reg, _ := ctx.Value(metricsKey{}).(prometheus.Registerer)
	return reg
}
