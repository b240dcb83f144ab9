package streams

import (
	"context"
	"errors"
	"io"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-serve/sluice/streams/protocol"
	"github.com/sluice-serve/sluice/streams/tracing"
)

// clientKind is a call span's kind option, made once: an option made per
// call is an allocation per call.
var clientKind = trace.WithSpanKind(trace.SpanKindClient)

// traceCall starts the client span of a call (a gateway's request, a
// handle call) as the child of ctx's span, or else of the request's
// traceparent, and makes the request carry the span's own traceparent.
// It returns nil when tracing is off.
func traceCall(ctx context.Context, req *protocol.Request) trace.Span {
	t := tracing.Tracer()
	if t == nil {
		return nil
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		if !sc.IsSampled() {
			return nil // the request carries the unsampled parent already
		}
	} else if tracing.Unsampled(req.Env.Trace) {
		return nil
	} else {
		ctx = tracing.Extract(ctx, req.Env.Trace, req.Env.TraceState)
	}
	ctx, span := t.Start(ctx, "call "+req.Topic, clientKind)
	span.SetAttributes(attribute.String("sluice.request_id", req.Env.ID), attribute.String("messaging.destination.name", req.Topic))
	req.Env.Trace, req.Env.TraceState = tracing.Inject(ctx, req.Env.Trace, req.Env.TraceState)
	return span
}

// traceEnd ends a call's span with the call's outcome.
func (p *Pending) traceEnd() {
	if p.span == nil {
		return
	}
	p.mu.Lock()
	err := p.end
	p.mu.Unlock()
	if err != nil && !errors.Is(err, io.EOF) {
		p.span.SetStatus(codes.Error, err.Error())
		p.span.SetAttributes(attribute.String("sluice.code", string(CodeOf(err))))
	}
	p.span.End()
}
