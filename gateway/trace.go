package gateway

import (
	"cmp"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/tracing"
)

// spanName is the name of the server span of a call counted under name.
func spanName(name string) string { return "gateway " + name }

// serverKind is the server span's kind option, made once: an option
// made per call is an allocation per call, sampled or not.
var serverKind = trace.WithSpanKind(trace.SpanKindServer)

// traceStart starts the exchange's server span, from admission on, as the
// child of the caller's traceparent (a new trace when there is none).
// The request's produce is its child (streams.Caller). Nothing happens
// with tracing off.
func (x *exchange) traceStart(c *call) {
	x.route = c.rt.prefix
	x.trace = tracing.TraceID(c.env.Trace)
	t := tracing.Tracer()
	if t == nil {
		return
	}
	name := c.rt.span
	if x.name != c.rt.app || name == "" { // a model called through its application
		name = spanName(x.name)
	}
	ctx := tracing.Extract(x.ctx, c.env.Trace, c.env.TraceState)
	x.ctx, x.span = t.Start(ctx, name, serverKind, trace.WithTimestamp(x.start))
	if x.span.IsRecording() {
		x.span.SetAttributes(attribute.String("sluice.app", x.name), attribute.String("sluice.ingress", c.rt.ingress))
	}
	// The caller's traceparent gives way to the span's (or its
	// child's, once the request is produced); its tracestate travels on
	// in the span's.
	c.env.Trace, c.env.TraceState = tracing.Inject(x.ctx, c.env.Trace, c.env.TraceState)
}

// traceEnd ends the server span with the call's code and request id.
func (x *exchange) traceEnd() {
	if x.span == nil || !x.span.IsRecording() {
		return // a span the sampler dropped records nothing
	}
	code := attribute.String("sluice.code", string(x.code))
	if x.p != nil {
		x.span.SetAttributes(attribute.String("sluice.request_id", x.p.ID()), code)
	} else {
		x.span.SetAttributes(code)
	}
	if x.code != streams.CodeOK {
		x.span.SetStatus(codes.Error, string(x.code))
	}
	x.span.End()
}

// traceID is the trace id of the exchange, or "" when none is known.
func (x *exchange) traceID() string {
	if x.span != nil {
		return x.span.SpanContext().TraceID().String()
	}
	return x.trace
}

// accessLog writes the exchange's line to the access log (Config.
// AccessLog), and logs a call that failed on the server's side (internal,
// unavailable, deadline exceeded) at Warn with its request and trace ids.
func (x *exchange) accessLog() {
	var id string
	if x.p != nil {
		id = x.p.ID()
	}
	if l := x.s.cfg.AccessLog; l != nil {
		l.Info("call", "app", x.name, "route", x.route, "code", cmp.Or(string(x.code), "ok"),
			"duration_ms", float64(time.Since(x.start))/float64(time.Millisecond),
			"request_id", id, "trace_id", x.traceID())
	}
	switch x.code {
	case streams.CodeInternal, streams.CodeUnavailable, streams.CodeDeadlineExceeded:
		x.s.cfg.Log.Warn("call failed", "app", x.name, "route", x.route, "code", string(x.code), "request_id", id, "trace_id", x.traceID())
	}
}
