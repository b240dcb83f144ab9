package replicas

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
	"github.com/sluice-serve/sluice/streams/tracing"
)

// A record's spans: "process <deployment>" (a consumer span, the child of
// the record's traceparent) from pick-up to the acknowledgement of its
// last output, and "handle <deployment>" inside it around the handler.
// Every record the handler causes (edges, forwards, answers, handle calls)
// carries the process span as its traceparent. With tracing off (no
// provider set) each hook returns after one atomic load; a record whose
// caller did not sample its trace passes its traceparent on untouched.

// spanNames are the names of a record's spans, made once per replica
// rather than once per record.
type spanNames struct{ process, handle string }

func (r *Replica) nameSpans() {
	r.spans = spanNames{process: "process " + r.cfg.Deployment, handle: "handle " + r.cfg.Deployment}
}

// The spans' kinds, as options made once: an option made per record is
// an allocation per record.
var (
	consumerKind = trace.WithSpanKind(trace.SpanKindConsumer)
	internalKind = trace.WithSpanKind(trace.SpanKindInternal)
)

// traceRecord starts rec's process span and makes req's traceparent the
// span's own. The queue wait (record timestamp to pick-up) is an
// attribute.
func (r *Replica) traceRecord(x *run, req *protocol.Request) {
	t := tracing.Tracer()
	if t == nil || tracing.Unsampled(req.Env.Trace) {
		return
	}
	rec := x.rec
	ctx := tracing.Extract(context.Background(), req.Env.Trace, req.Env.TraceState)
	// The span starts now, by the SDK's clock: a start time passed as
	// an option would cost an allocation.
	ctx, span := t.Start(ctx, r.spans.process, consumerKind)
	now := time.Now()
	// Set on the span, not passed to Start: the attributes are copied
	// once rather than twice (no sampler the environment can name reads
	// them).
	span.SetAttributes(
		attribute.String("sluice.app", r.cfg.App),
		attribute.String("sluice.deployment", r.cfg.Deployment),
		attribute.String("sluice.request_id", req.Env.ID),
		attribute.String("messaging.destination.name", rec.Topic),
		attribute.Int("messaging.destination.partition.id", int(rec.Partition)),
		attribute.Int64("messaging.kafka.offset", rec.Offset),
		attribute.Float64("sluice.queue_wait_ms", float64(max(now.Sub(rec.Timestamp), 0))/float64(time.Millisecond)),
	)
	x.span, x.traceCtx = span, ctx
	req.Env.Trace, req.Env.TraceState = tracing.Inject(ctx, req.Env.Trace, req.Env.TraceState)
}

// traceContext is the context a record's handler runs in: its process
// span's, or the background.
func (x *run) traceContext() context.Context {
	if x.traceCtx == nil {
		return context.Background()
	}
	return x.traceCtx
}

// traceHandler starts the handle span inside ctx's process span; nil
// when tracing is off.
func (r *Replica) traceHandler(ctx context.Context) (context.Context, trace.Span) {
	t := tracing.Tracer()
	if t == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return t.Start(ctx, r.spans.handle, internalKind)
}

// traceHandled ends the handle span with the handler's error.
func traceHandled(span trace.Span, err *error) {
	if span == nil {
		return
	}
	if *err != nil {
		span.SetStatus(codes.Error, (*err).Error())
		span.SetAttributes(attribute.String("sluice.code", string(streams.CodeOf(*err))))
	}
	span.End()
}

// traceFail records a failure on the process span and logs it with the
// request's ids: at Warn when the record is dead-lettered (nobody waits
// for the answer), at Debug when the caller is told.
func (x *run) traceFail(err error) {
	code := streams.CodeOf(err)
	if x.span != nil {
		x.span.SetStatus(codes.Error, err.Error())
		x.span.SetAttributes(attribute.String("sluice.code", string(code)))
	}
	if x.req.Env.ReplyTo == "" {
		x.log().Warn("record dead-lettered", "code", string(code), "err", err)
		return
	}
	x.log().Debug("request failed", "code", string(code), "err", err)
}

// traceEnd ends the process span once the record completed.
func (x *run) traceEnd() {
	if x.span != nil {
		x.span.End()
	}
}

// log is the replica's logger with the record's request and trace ids.
func (x *run) log() *slog.Logger {
	return x.r.cfg.Log.With("request_id", x.req.Env.ID, "trace_id", tracing.TraceID(x.req.Env.Trace),
		"source", protocol.Source{Topic: x.rec.Topic, Partition: x.rec.Partition, Offset: x.rec.Offset}.String())
}
