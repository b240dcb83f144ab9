package cli

import (
	"context"
	"time"

	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/code"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
)

// control is one process's view of the control plane: the application
// store (validating every spec it reads) and the status view over it,
// both read from Kafka. Every command that serves the API or runs
// replicas opens one; the ones that run replicas add a Reconciler.
type control struct {
	store  *appstore.Store
	status *controller.Status
	done   chan struct{}
}

// resolver is what checks and pins applications' code in this process:
// the handlers of its own binary (reg), the bundles catalog knows, and
// local binaries where localPaths (sluice dev).
func resolver(reg *serve.Registry, catalog code.Catalog, localPaths bool) *code.Resolver {
	r := &code.Resolver{Catalog: catalog, LocalPaths: localPaths}
	if reg != nil {
		r.Builtin = reg.Manifest()
	}
	return r
}

// openControl opens the store, follows it until runCtx ends, and returns
// once it has caught up (bounded by ctx and 30 s). Every spec is checked
// against its code with res, and pinned by res when deployed here; the
// tensor joins of one deployed here are checked against reg's models.
func openControl(ctx, runCtx context.Context, bs []string, namer streams.Namer, res *code.Resolver, reg *registry.Registry, fw followed, env Env) (*control, error) {
	store, err := appstore.Open(ctx, appstore.Config{Brokers: bs, Namer: namer, Check: res.Check, Prepare: res.Pin, Tensors: reg.Tensors(), Log: env.Log})
	if err != nil {
		return nil, err
	}
	c := &control{store: store, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		store.Run(runCtx)
	}()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := store.Sync(sctx); err != nil {
		return nil, err
	}
	c.status = controller.NewStatus(controller.StatusConfig{
		Namer: namer, Store: store, Replicas: fw.replicas, Models: fw.reports,
		Scaling: fw.statuses.Get, Placements: fw.nodes.Replicas, Log: env.Log,
	})
	return c, nil
}

// reconcile starts a Reconciler over c's store that hands the applications,
// once their topics exist, to fn.
func (c *control) reconcile(ctx context.Context, bs []string, namer streams.Namer, env Env, fn func(context.Context, []appstore.Applied)) (*controller.Reconciler, error) {
	r, err := controller.NewReconciler(ctx, controller.ReconcilerConfig{
		Brokers: bs, Namer: namer, Store: c.store, Outdated: c.status.Outdated, Log: env.Log,
	})
	if err != nil {
		return nil, err
	}
	r.OnApplied(fn)
	r.Start()
	return r, nil
}

// specs is the applications' specs.
func specs(apps []appstore.Applied) []*spec.App {
	out := make([]*spec.App, len(apps))
	for i, a := range apps {
		out[i] = a.Spec
	}
	return out
}
