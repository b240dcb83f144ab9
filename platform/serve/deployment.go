// Package serve is the Go SDK: write deployments as Go functions or types,
// compose them with Bind into applications, and call one deployment from
// another through typed handles whose futures the platform can forward
// from replica to replica without a round trip through the caller.
package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
)

// Caller is a unary deployment type: the value a constructor returns.
type Caller[In, Out any] interface {
	Call(ctx context.Context, in In) (Out, error)
}

// Streamer is a streaming deployment type: send yields one item.
type Streamer[In, Out any] interface {
	Stream(ctx context.Context, in In, send func(Out) error) error
}

// Reconfigurer is implemented by deployments that take a user config; it
// is called with the deployment's user_config after construction and again
// whenever the config changes, without a restart.
type Reconfigurer interface {
	Reconfigure(ctx context.Context, config json.RawMessage) error
}

// HealthChecker is implemented by deployments that can tell whether they
// still work. The binary's manifest records it (health_check); the
// platform does not call it yet.
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// Deployment is a deployable unit of Go code: a function, or a constructor
// whose result serves requests. Create one with Func, StreamFunc, Type,
// StreamType, BatchFunc or HTTP; compose with Bind.
type Deployment struct {
	name    string
	opts    spec.Deployment
	in, out reflect.Type
	streams bool
	batches bool          // a BatchFunc: its handler groups requests
	http    bool          // an HTTP ingress (HTTP): its handler serves HTTP requests
	ctor    reflect.Value // nil for functions
	wrap    func(v any, rt *runtime) (replicas.Handler, error)
}

// Option sets a deployment option; the names mirror the YAML spec.
type Option func(*spec.Deployment)

// Replicas sets the replica bounds and the starting count.
func Replicas(min, initial, max int) Option {
	return func(d *spec.Deployment) { d.Replicas = spec.Replicas{Min: min, Initial: initial, Max: max} }
}

// MaxOngoingRequests caps the records one replica processes at once.
func MaxOngoingRequests(n int) Option {
	return func(d *spec.Deployment) { d.MaxOngoingRequests = n }
}

// UserConfig sets the config passed to Reconfigure.
func UserConfig(v any) Option {
	return func(d *spec.Deployment) {
		b, err := json.Marshal(v)
		if err == nil {
			d.UserConfig = b
		}
	}
}

// Resources sets what one replica needs.
func Resources(r spec.Resources) Option {
	return func(d *spec.Deployment) { d.Resources = r }
}

// Ordered processes each partition's records one at a time, in order.
func Ordered() Option {
	return func(d *spec.Deployment) { d.Ordered = true }
}

// Func is a deployment that is a plain function.
func Func[In, Out any](name string, fn func(context.Context, In) (Out, error), opts ...Option) *Deployment {
	d := newDeployment[In, Out](name, false, opts)
	d.wrap = func(_ any, rt *runtime) (replicas.Handler, error) {
		return &unary[In, Out]{call: fn, rt: rt}, nil
	}
	return d
}

// StreamFunc is a deployment that is a function yielding a stream.
func StreamFunc[In, Out any](name string, fn func(ctx context.Context, in In, send func(Out) error) error, opts ...Option) *Deployment {
	d := newDeployment[In, Out](name, true, opts)
	d.wrap = func(_ any, rt *runtime) (replicas.Handler, error) {
		return &stream[In, Out]{call: fn, rt: rt}, nil
	}
	return d
}

// Type is a deployment built by a constructor whose result implements
// Caller[In, Out]. The constructor's parameters are bound by Bind: a
// *Handle parameter takes a bound deployment, any other takes a value that
// travels as JSON. It may return an error as its second result.
func Type[In, Out any](name string, ctor any, opts ...Option) *Deployment {
	d := newDeployment[In, Out](name, false, opts)
	d.ctor = reflect.ValueOf(ctor)
	d.wrap = func(v any, rt *runtime) (replicas.Handler, error) {
		c, ok := v.(Caller[In, Out])
		if !ok {
			return nil, fmt.Errorf("deployment %s: constructor result %T does not implement serve.Caller[%s, %s]", name, v, d.in, d.out)
		}
		return &unary[In, Out]{call: c.Call, self: v, rt: rt}, nil
	}
	return d
}

// StreamType is a deployment built by a constructor whose result
// implements Streamer[In, Out].
func StreamType[In, Out any](name string, ctor any, opts ...Option) *Deployment {
	d := newDeployment[In, Out](name, true, opts)
	d.ctor = reflect.ValueOf(ctor)
	d.wrap = func(v any, rt *runtime) (replicas.Handler, error) {
		s, ok := v.(Streamer[In, Out])
		if !ok {
			return nil, fmt.Errorf("deployment %s: constructor result %T does not implement serve.Streamer[%s, %s]", name, v, d.in, d.out)
		}
		return &stream[In, Out]{call: s.Stream, self: v, rt: rt}, nil
	}
	return d
}

func newDeployment[In, Out any](name string, streams bool, opts []Option) *Deployment {
	d := &Deployment{
		name:    name,
		in:      reflect.TypeFor[In](),
		out:     reflect.TypeFor[Out](),
		streams: streams,
	}
	d.opts.Name = name
	d.opts.Handler = name
	for _, o := range opts {
		o(&d.opts)
	}
	return d
}

// Name is the deployment's handler name.
func (d *Deployment) Name() string { return d.name }

// Streams reports whether the deployment yields a stream.
func (d *Deployment) Streams() bool { return d.streams }

// Bound is a deployment with its constructor arguments: a node of an
// application graph.
type Bound struct {
	d    *Deployment
	args []any
	next []*Bound   // dataflow edges out of this node (From)
	join *spec.Join // how it combines several inputs (Join)
}

// From feeds b with the output of each upstream: a dataflow edge from
// each to b, as an application's `edges:` in YAML. Fed by more than one
// (two deployments bound to the same input, say), b combines them with
// Join, or the application is refused at deploy. It returns b.
func (b *Bound) From(upstreams ...*Bound) *Bound {
	for _, u := range upstreams {
		u.next = append(u.next, b)
	}
	return b
}

// Join makes b combine the inputs of its incoming dataflow edges into
// one input per request, a JSON object keyed by upstream deployment name
// (spec.Join, as `join:` in YAML; unset fields take its defaults). It
// returns b.
func (b *Bound) Join(j spec.Join) *Bound {
	b.join = j.Clone()
	return b
}

// Bind gives the deployment its constructor arguments. An argument that
// is a *Bound becomes a handle to that deployment.
func (d *Deployment) Bind(args ...any) *Bound {
	return &Bound{d: d, args: args}
}

// params checks args against the constructor's parameters and returns the
// spec's args; handles maps each handle arg to its bound node.
func (b *Bound) params() ([]spec.Arg, []*Bound, error) {
	d := b.d
	if !d.ctor.IsValid() {
		if len(b.args) > 0 {
			return nil, nil, fmt.Errorf("deployment %s is a function and takes no arguments, got %d", d.name, len(b.args))
		}
		return nil, nil, nil
	}
	if err := d.checkCtor(); err != nil {
		return nil, nil, err
	}
	t := d.ctor.Type()
	if t.NumIn() != len(b.args) {
		return nil, nil, fmt.Errorf("deployment %s: constructor takes %d arguments, Bind got %d", d.name, t.NumIn(), len(b.args))
	}
	var args []spec.Arg
	var handles []*Bound
	for i, a := range b.args {
		pt := t.In(i)
		if nb, ok := a.(*Bound); ok {
			if err := checkHandleParam(pt, nb.d); err != nil {
				return nil, nil, fmt.Errorf("deployment %s argument %d: %w", d.name, i, err)
			}
			args = append(args, spec.Arg{Handle: nb.d.name}) // renamed when the graph is named
			handles = append(handles, nb)
			continue
		}
		if isHandleType(pt) {
			return nil, nil, fmt.Errorf("deployment %s argument %d: parameter is a handle (%s), got %T; pass a bound deployment", d.name, i, pt, a)
		}
		raw, err := json.Marshal(a)
		if err != nil {
			return nil, nil, fmt.Errorf("deployment %s argument %d: %T does not travel as JSON: %v", d.name, i, a, err)
		}
		if err := json.Unmarshal(raw, reflect.New(pt).Interface()); err != nil {
			return nil, nil, fmt.Errorf("deployment %s argument %d: %T does not decode into parameter type %s: %v", d.name, i, a, pt, err)
		}
		args = append(args, spec.Arg{Value: raw})
		handles = append(handles, nil)
	}
	return args, handles, nil
}

var errorType = reflect.TypeFor[error]()

// checkCtor refuses a constructor that construct could not call: not a
// function, variadic, or not returning (T) or (T, error).
func (d *Deployment) checkCtor() error {
	if !d.ctor.IsValid() {
		return nil
	}
	t := d.ctor.Type()
	switch {
	case t.Kind() != reflect.Func:
		return fmt.Errorf("deployment %s: constructor is %s, not a function", d.name, t)
	case t.IsVariadic():
		return fmt.Errorf("deployment %s: constructor %s is variadic; give it fixed parameters", d.name, t)
	case t.NumOut() == 1:
	case t.NumOut() == 2 && t.Out(1) == errorType:
	default:
		return fmt.Errorf("deployment %s: constructor must return (T) or (T, error), returns %d values", d.name, t.NumOut())
	}
	return nil
}

// construct calls the constructor with args decoded from the spec and
// handles built from the runtime.
func (d *Deployment) construct(ctx context.Context, dep spec.Deployment, rt *runtime) (replicas.Handler, error) {
	var v any
	if d.ctor.IsValid() {
		t := d.ctor.Type()
		if len(dep.Args) != t.NumIn() {
			return nil, fmt.Errorf("deployment %s: constructor takes %d arguments, spec gives %d", dep.Name, t.NumIn(), len(dep.Args))
		}
		in := make([]reflect.Value, len(dep.Args))
		for i, a := range dep.Args {
			pt := t.In(i)
			if a.Handle != "" {
				h, err := newHandleParam(pt, rt.handle(dep.Name, a.Handle))
				if err != nil {
					return nil, fmt.Errorf("deployment %s argument %d: %w", dep.Name, i, err)
				}
				in[i] = h
				continue
			}
			p := reflect.New(pt)
			if err := json.Unmarshal(a.Value, p.Interface()); err != nil {
				return nil, fmt.Errorf("deployment %s argument %d: decode %s into %s: %v", dep.Name, i, a.Value, pt, err)
			}
			in[i] = p.Elem()
		}
		out := d.ctor.Call(in)
		if len(out) == 2 && !out[1].IsNil() {
			return nil, fmt.Errorf("deployment %s: constructor: %w", dep.Name, out[1].Interface().(error))
		}
		v = out[0].Interface()
	}
	h, err := d.wrap(v, rt)
	if err != nil {
		return nil, err
	}
	if b, ok := h.(interface{ configure(spec.Batching) }); ok {
		b.configure(dep.Batching)
	}
	if r, ok := v.(Reconfigurer); ok && len(dep.UserConfig) > 0 {
		if err := r.Reconfigure(ctx, dep.UserConfig); err != nil {
			return nil, fmt.Errorf("deployment %s: reconfigure: %w", dep.Name, err)
		}
	}
	return h, nil
}
