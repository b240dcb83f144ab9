package gateway

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/tracing"
)

// BenchmarkTraceExchange measures what a call's server span costs the
// gateway (traceStart and traceEnd, a caller with no traceparent): off,
// on with the trace left unsampled by the parent-based 1 % ratio (ids
// chosen so that it never samples), and on sampled.
func BenchmarkTraceExchange(b *testing.B) {
	s := &Server{}
	ctx := context.Background()
	for range 8 { // the depth of a served request's context
		ctx = context.WithValue(ctx, new(int), 0)
	}
	rt := route{prefix: "/chain", app: "chain", ingress: "chain-ingress", span: spanName("chain")}
	hooks := func() {
		x := &exchange{s: s, ctx: ctx, name: "chain", start: time.Now(), code: streams.CodeOK}
		c := &call{rt: rt}
		x.traceStart(c)
		x.traceEnd()
	}
	run := func(b *testing.B, tp *sdktrace.TracerProvider) {
		if tp != nil {
			tracing.Set(tp)
			defer func() { tracing.Set(nil); _ = tp.Shutdown(context.Background()) }()
		}
		b.ReportAllocs()
		for b.Loop() {
			hooks()
		}
	}
	b.Run("off", func(b *testing.B) { run(b, nil) })
	b.Run("unsampled", func(b *testing.B) {
		run(b, sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))))
	})
	b.Run("sampled", func(b *testing.B) {
		run(b, sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())))
	})
}
