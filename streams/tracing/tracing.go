// Package tracing carries OpenTelemetry spans across the records of a
// request. A record's trace context is its W3C traceparent header; each
// hop starts its span as that context's child and writes its own span
// into the records it sends, so the next hop's span is its child.
//
// Tracing is off until Set installs a provider: then Tracer returns nil
// and every caller skips its spans at the cost of one atomic load.
package tracing

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of every span the project starts.
const Scope = "github.com/sluice-serve/sluice"

type holder struct{ t trace.Tracer }

var current atomic.Pointer[holder]

// Set makes the process trace with tp; nil turns tracing off.
func Set(tp trace.TracerProvider) {
	if tp == nil {
		current.Store(nil)
		return
	}
	current.Store(&holder{t: tp.Tracer(Scope)})
}

// Tracer is the process's tracer, or nil when tracing is off.
func Tracer() trace.Tracer {
	if h := current.Load(); h != nil {
		return h.t
	}
	return nil
}

var w3c = propagation.TraceContext{}

// carrier is one traceparent header as a propagation carrier.
type carrier struct{ parent string }

func (c *carrier) Get(key string) string {
	if key == "traceparent" {
		return c.parent
	}
	return ""
}

func (c *carrier) Set(key, value string) {
	if key == "traceparent" {
		c.parent = value
	}
}

func (c *carrier) Keys() []string { return []string{"traceparent"} }

// Extract returns ctx with the remote span context traceparent names; ctx
// itself when traceparent is empty or malformed.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return w3c.Extract(ctx, &carrier{parent: traceparent})
}

// Inject returns the traceparent of ctx's span, or fallback when ctx has
// no valid span context.
func Inject(ctx context.Context, fallback string) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return fallback
	}
	c := &carrier{}
	w3c.Inject(ctx, c)
	return c.parent
}

// TraceID is the trace id of a W3C traceparent
// (version-traceid-spanid-flags), or "" when it names none.
func TraceID(traceparent string) string {
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' {
		return ""
	}
	id := traceparent[3:35]
	if id == "00000000000000000000000000000000" {
		return ""
	}
	return id
}

// Unsampled reports whether traceparent is well formed and its caller
// did not sample the trace (the sampled flag clear). Under the
// parent-based sampler such a record's spans would record nothing: a hop
// skips them and passes the traceparent on as it came, which carries the
// same decision to the next hop at no cost.
func Unsampled(traceparent string) bool {
	if TraceID(traceparent) == "" || len(traceparent) != 55 || traceparent[52] != '-' {
		return false
	}
	switch traceparent[54] {
	case '0', '2', '4', '6', '8', 'a', 'c', 'e':
		return true
	}
	return false
}
