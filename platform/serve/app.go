package serve

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// Application is a graph built with Bind, compiled to the same spec a
// YAML file declares.
type Application struct {
	spec *spec.App
	deps []*Deployment
}

// AppOption sets an application option.
type AppOption func(*spec.App)

// Partitions sets the partition count of the application's topics.
func Partitions(n int32) AppOption { return func(a *spec.App) { a.Partitions = n } }

// App compiles the graph rooted at ingress into an application served
// under routePrefix. A deployment bound twice with different arguments
// becomes two deployments, the second named with a "-1" suffix.
func App(name, routePrefix string, ingress *Bound, opts ...AppOption) (*Application, error) {
	a := &spec.App{Name: name, RoutePrefix: routePrefix}
	for _, o := range opts {
		o(a)
	}
	names := map[*Bound]string{}
	taken := map[string]bool{}
	var order []*Bound
	var visit func(b *Bound) error
	visit = func(b *Bound) error {
		if _, ok := names[b]; ok {
			return nil
		}
		n := b.d.name
		for i := 1; taken[n]; i++ {
			n = b.d.name + "-" + strconv.Itoa(i)
		}
		names[b], taken[n] = n, true
		order = append(order, b)
		for _, arg := range b.args {
			if nb, ok := arg.(*Bound); ok {
				if err := visit(nb); err != nil {
					return err
				}
			}
		}
		for _, nb := range b.next {
			if err := visit(nb); err != nil {
				return err
			}
		}
		return nil
	}
	if ingress == nil {
		return nil, fmt.Errorf("application %s: no ingress deployment", name)
	}
	if err := visit(ingress); err != nil {
		return nil, err
	}
	app := &Application{spec: a}
	seen := map[*Deployment]bool{}
	for _, b := range order {
		args, handles, err := b.params()
		if err != nil {
			return nil, fmt.Errorf("application %s: %w", name, err)
		}
		for i, h := range handles {
			if h != nil {
				args[i].Handle = names[h]
			}
		}
		dep := b.d.opts
		dep.Name = names[b]
		dep.Handler = b.d.name
		dep.Args = args
		dep.HTTP = b.d.http
		dep.Join = b.join.Clone()
		a.Deployments = append(a.Deployments, dep)
		for _, nb := range b.next {
			a.Edges = append(a.Edges, spec.Edge{From: names[b], To: names[nb]})
		}
		if !seen[b.d] {
			seen[b.d] = true
			app.deps = append(app.deps, b.d)
		}
	}
	a.Ingress = names[ingress]
	a.Default()
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("application %s: %w", name, err)
	}
	return app, nil
}

// MustApp is App for package-level examples: it panics on a bad graph.
func MustApp(name, routePrefix string, ingress *Bound, opts ...AppOption) *Application {
	a, err := App(name, routePrefix, ingress, opts...)
	if err != nil {
		panic(err)
	}
	return a
}

// Spec returns a copy of the application's spec.
func (a *Application) Spec() *spec.App { return a.spec.Clone() }

// Registry holds the deployments a binary can run, by handler name. The
// binary's main fills it explicitly; nothing registers itself.
type Registry struct {
	deps map[string]*Deployment
	apps []*Application

	once     sync.Once // builds manifest on first use
	manifest bundle.Manifest
}

// NewRegistry returns a registry of the applications' deployments and of
// extra deployments that YAML specs may name.
func NewRegistry(apps []*Application, extra ...*Deployment) (*Registry, error) {
	r := &Registry{deps: map[string]*Deployment{}, apps: apps}
	for _, a := range apps {
		for _, d := range a.deps {
			if err := r.add(d); err != nil {
				return nil, err
			}
		}
	}
	for _, d := range extra {
		if err := r.add(d); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Registry) add(d *Deployment) error {
	if err := d.checkCtor(); err != nil {
		return err
	}
	if old, ok := r.deps[d.name]; ok && old != d {
		return fmt.Errorf("two different deployments are named %s", d.name)
	}
	r.deps[d.name] = d
	return nil
}

// Apps returns the applications built into the binary.
func (r *Registry) Apps() []*Application { return r.apps }

// ErrUnknownHandler is wrapped when a spec names a handler the binary lacks.
var ErrUnknownHandler = bundle.ErrUnknownHandler

// Check reports every way app cannot run on this binary: unknown handlers,
// arguments that do not fit constructors, handles of the wrong type,
// batching on a handler that does not batch, CEL transforms the target
// cannot decode. It is bundle.Check against this binary's manifest, the
// check the platform makes against a code bundle's.
func (r *Registry) Check(app *spec.App) error {
	return bundle.Check(app, r.Manifest())
}

// Streams reports whether the handler yields a stream.
func (r *Registry) Streams(handler string) bool {
	d := r.deps[handler]
	return d != nil && d.streams
}

// Build constructs the handler of one deployment of app, with handles that
// call through caller.
func (r *Registry) Build(ctx context.Context, app *spec.App, deployment string, caller *streams.Caller, namer streams.Namer) (replicas.Handler, error) {
	for _, dep := range app.Deployments {
		if dep.Name != deployment {
			continue
		}
		d := r.deps[dep.Handler]
		if d == nil {
			return nil, fmt.Errorf("deployment %s: %w %q", dep.Name, ErrUnknownHandler, dep.Handler)
		}
		return d.construct(ctx, dep, &runtime{caller: caller, namer: namer, app: app.Name, metrics: metricsOf(ctx)})
	}
	return nil, fmt.Errorf("application %s has no deployment %s", app.Name, deployment)
}

// InferenceSignature sets how the application presents itself on the Open
// Inference Protocol endpoints: platform, versions and tensor signature.
func InferenceSignature(in spec.Inference) AppOption {
	return func(a *spec.App) { a.Inference = &in }
}
