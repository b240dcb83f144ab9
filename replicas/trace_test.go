package replicas

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sluice-serve/sluice/streams/protocol"
	"github.com/sluice-serve/sluice/streams/tracing"
)

// BenchmarkTraceHooks is what the consume loop pays per record for its
// tracing hooks (trace.go: process span, handler context, handle span,
// end), against the loop's own bookkeeping of a record (an atomic add,
// as Stats counts) in the same run: with tracing off (no provider), on
// for a record its caller did not sample, and on sampling every record
// into a provider that exports nothing.
//
//	go test ./replicas -run '^$' -bench TraceHooks
func BenchmarkTraceHooks(b *testing.B) {
	r := &Replica{cfg: Config{App: "a", Deployment: "d"}}
	r.nameSpans()
	rec := &kgo.Record{Topic: "t", Timestamp: time.Now()}
	parent := protocol.Request{Env: protocol.Envelope{ID: "r1", Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	x := &run{r: r, rec: rec}
	hooks := func() {
		x.span, x.traceCtx = nil, nil
		req := parent
		r.traceRecord(x, &req)
		_, span := r.traceHandler(x.traceContext())
		var err error
		traceHandled(span, &err)
		x.traceEnd()
	}
	var base time.Duration
	b.Run("baseline", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			r.stats.processed.Add(1)
		}
		base = time.Since(start) / time.Duration(max(b.N, 1))
	})
	report := func(b *testing.B, start time.Time) {
		per := time.Since(start) / time.Duration(max(b.N, 1))
		if base > 0 {
			b.ReportMetric(float64(per)/float64(base), "x_baseline")
		}
	}
	b.Run("off", func(b *testing.B) {
		tracing.Set(nil)
		start := time.Now()
		for range b.N {
			hooks()
		}
		report(b, start)
	})
	b.Run("on-unsampled", func(b *testing.B) {
		// A record of a trace its caller did not sample (flags 00) under
		// the parent-based sampler: a span that records nothing.
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
		tracing.Set(tp)
		defer func() { tracing.Set(nil); _ = tp.Shutdown(context.Background()) }()
		parent.Env.Trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
		defer func() { parent.Env.Trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }()
		start := time.Now()
		for range b.N {
			hooks()
		}
		report(b, start)
	})
	b.Run("on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		tracing.Set(tp)
		defer func() { tracing.Set(nil); _ = tp.Shutdown(context.Background()) }()
		start := time.Now()
		for range b.N {
			hooks()
		}
		report(b, start)
	})
}
