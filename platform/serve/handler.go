package serve

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// runtime is what handles need from the replica they run in.
type runtime struct {
	caller  *streams.Caller
	namer   streams.Namer
	app     string
	metrics prometheus.Registerer // the deployment's own metrics (metrics.go); nil: none
}

func (rt *runtime) handle(from, to string) *handleCore {
	return &handleCore{rt: rt, topic: rt.namer.Edge(rt.app, from, to), target: to}
}

// Model returns the model id and version the request being served names
// (from the OIP path or the sl-model and sl-version headers), or empty
// strings.
func Model(ctx context.Context) (model, version string) {
	if sc, ok := ctx.Value(scopeKey{}).(*scope); ok {
		return sc.parent.Model, sc.parent.Version
	}
	return "", ""
}

// TraceParent returns the W3C traceparent of the request being served
// (from the caller's traceparent header or gRPC metadata), or "".
func TraceParent(ctx context.Context) string {
	if sc, ok := ctx.Value(scopeKey{}).(*scope); ok {
		return sc.parent.Trace
	}
	return ""
}

// TraceState returns the W3C tracestate that travels with the request
// being served (the caller's tracestate header or gRPC metadata, as the
// hops before this one wrote it on), or "".
func TraceState(ctx context.Context) string {
	if sc, ok := ctx.Value(scopeKey{}).(*scope); ok {
		return sc.parent.TraceState
	}
	return ""
}

// RequestHeader returns one of the caller's x-* headers (REST headers,
// gRPC metadata, or Predict's headers) by name, any case, or "".
func RequestHeader(ctx context.Context, name string) string {
	if sc, ok := ctx.Value(scopeKey{}).(*scope); ok {
		return sc.parent.RequestHeaders()[strings.ToLower(name)]
	}
	return ""
}

// invoke runs fn inside a scope for the record's child calls: calls not
// yet sent go out when fn returns, and calls never awaited are let go.
func invoke(ctx context.Context, rt *runtime, in *replicas.Input, fn func(context.Context) error) error {
	sc := &scope{rt: rt, parent: in.Env}
	if rt == nil {
		return fn(context.WithValue(ctx, scopeKey{}, sc))
	}
	err := fn(context.WithValue(ctx, scopeKey{}, sc))
	sc.flush(ctx)
	sc.close()
	return err
}

// unary adapts a Caller to replicas.Handler.
type unary[In, Out any] struct {
	call func(context.Context, In) (Out, error)
	self any // the constructed value, for Reconfigure
	rt   *runtime
}

func (h *unary[In, Out]) Handle(ctx context.Context, in *replicas.Input, out replicas.Output) error {
	v, err := decode[In](in.Value)
	if err != nil {
		return err
	}
	var res Out
	err = invoke(ctx, h.rt, in, func(ctx context.Context) error {
		res, err = h.call(ctx, v)
		return err
	})
	if err != nil {
		return err
	}
	b, ct, err := encode(res)
	if err != nil {
		return err
	}
	return out.Emit(b, ct)
}

// stream adapts a Streamer to replicas.Handler.
type stream[In, Out any] struct {
	call func(ctx context.Context, in In, send func(Out) error) error
	self any
	rt   *runtime
}

func (h *stream[In, Out]) Streams() bool { return true }

func (h *stream[In, Out]) Handle(ctx context.Context, in *replicas.Input, out replicas.Output) error {
	v, err := decode[In](in.Value)
	if err != nil {
		return err
	}
	return invoke(ctx, h.rt, in, func(ctx context.Context) error {
		return h.call(ctx, v, func(item Out) error {
			if err := ctx.Err(); err != nil {
				return streams.ContextError(err)
			}
			b, ct, err := encode(item)
			if err != nil {
				return err
			}
			return out.Emit(b, ct)
		})
	})
}

// Reconfigure hands a new user config to a running handler whose
// deployment implements Reconfigurer, without a restart. It reports false
// when the handler cannot take it in place (the caller restarts instead).
func Reconfigure(ctx context.Context, h replicas.Handler, config json.RawMessage) (bool, error) {
	var self any
	switch x := h.(type) {
	case Reconfigurer: // a built-in handler (the model server)
		return true, x.Reconfigure(ctx, config)
	case interface{ value() any }:
		self = x.value()
	default:
		return false, nil
	}
	r, ok := self.(Reconfigurer)
	if !ok {
		return false, nil
	}
	return true, r.Reconfigure(ctx, config)
}

func (h *unary[In, Out]) value() any  { return h.self }
func (h *stream[In, Out]) value() any { return h.self }
