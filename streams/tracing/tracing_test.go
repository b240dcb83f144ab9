package tracing

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceID(t *testing.T) {
	for in, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "4bf92f3577b34da6a3ce929d0e0e4736",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "",
		"00-4bf92f3577b34da6a3ce929d0e0e4736":                     "",
		"":                                                        "",
	} {
		if got := TraceID(in); got != want {
			t.Errorf("TraceID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnsampled(t *testing.T) {
	for in, want := range map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00": true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03": false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02": true,
		"garbage": false,
		"":        false,
	} {
		if got := Unsampled(in); got != want {
			t.Errorf("Unsampled(%q) = %v, want %v", in, got, want)
		}
	}
}

// A span started from an extracted traceparent is its child, and Inject
// writes the span's own traceparent with the tracestate it inherited;
// with no valid span it gives the fallbacks.
func TestExtractInject(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	ctx, span := tp.Tracer("t").Start(Extract(context.Background(), parent, state), "s")
	defer span.End()
	if got := span.(sdktrace.ReadOnlySpan).Parent().SpanID().String(); got != "00f067aa0ba902b7" {
		t.Fatalf("parent span %s, want 00f067aa0ba902b7", got)
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + span.SpanContext().SpanID().String() + "-01"
	if got, gotState := Inject(ctx, parent, state); got != want || gotState != state {
		t.Fatalf("Inject = %q, %q; want %q, %q", got, gotState, want, state)
	}
	if got, gotState := Inject(context.Background(), "fallback", "st=1"); got != "fallback" || gotState != "st=1" {
		t.Fatalf("Inject without a span = %q, %q; want the fallbacks", got, gotState)
	}
	if got := Extract(context.Background(), "garbage", state); got != context.Background() {
		t.Fatal("a malformed traceparent gave a context")
	}
	// A malformed tracestate is left out; the traceparent still counts.
	ctx, span2 := tp.Tracer("t").Start(Extract(context.Background(), parent, "no equals sign"), "s")
	defer span2.End()
	if _, gotState := Inject(ctx, parent, "no equals sign"); gotState != "" {
		t.Fatalf("Inject kept a malformed tracestate: %q", gotState)
	}
	if got := span2.(sdktrace.ReadOnlySpan).Parent().SpanID().String(); got != "00f067aa0ba902b7" {
		t.Fatalf("with a malformed tracestate, parent span %s, want 00f067aa0ba902b7", got)
	}
}

// Extract reads a traceparent as the W3C Trace Context propagator does,
// and Inject writes what it would.
func TestParentAgainstPropagator(t *testing.T) {
	w3c := propagation.TraceContext{}
	for _, tc := range []struct{ parent, state string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "a=1"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", "a=1,b@t=2"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", ""},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", ""},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01later", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", ""},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", ""},
		{"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", ""},
		{"", "a=1"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "bad state"},
	} {
		want := trace.SpanContextFromContext(w3c.Extract(context.Background(), propagation.MapCarrier{"traceparent": tc.parent, "tracestate": tc.state}))
		got := trace.SpanContextFromContext(Extract(context.Background(), tc.parent, tc.state))
		if !got.Equal(want) {
			t.Errorf("Extract(%q, %q) = %v, the propagator's %v", tc.parent, tc.state, got, want)
		}
		if !want.IsValid() {
			continue
		}
		m := propagation.MapCarrier{}
		ctx := trace.ContextWithSpanContext(context.Background(), want)
		w3c.Inject(ctx, m)
		if p, s := Inject(ctx, "", ""); p != m["traceparent"] || s != m["tracestate"] {
			t.Errorf("Inject of %q = %q, %q; the propagator's %q, %q", tc.parent, p, s, m["traceparent"], m["tracestate"])
		}
	}
}

// FuzzExtract holds Extract to the propagator on any input.
func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=1")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "")
	w3c := propagation.TraceContext{}
	f.Fuzz(func(t *testing.T, parent, state string) {
		want := trace.SpanContextFromContext(w3c.Extract(context.Background(), propagation.MapCarrier{"traceparent": parent, "tracestate": state}))
		got := trace.SpanContextFromContext(Extract(context.Background(), parent, state))
		if !got.Equal(want) {
			t.Fatalf("Extract(%q, %q) = %v, the propagator's %v", parent, state, got, want)
		}
	})
}

// BenchmarkExtractInject is one hop's trace context in and out: the
// record's headers into a context and a child span's back out, by hand
// (Extract, Inject) and through OpenTelemetry's W3C propagator with a
// map carrier, in the same run.
//
//	go test ./streams/tracing -run '^$' -bench ExtractInject -benchmem
func BenchmarkExtractInject(b *testing.B) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	child := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0xa1, 2}, TraceFlags: trace.FlagsSampled,
	})
	for _, state := range []string{"", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"} {
		b.Run("hand/state="+fmt.Sprint(state != ""), func(b *testing.B) {
			for b.Loop() {
				ctx := Extract(context.Background(), parent, state)
				sc := child.WithTraceState(trace.SpanContextFromContext(ctx).TraceState())
				_, _ = Inject(trace.ContextWithSpanContext(ctx, sc), parent, state)
			}
		})
		b.Run("propagator/state="+fmt.Sprint(state != ""), func(b *testing.B) {
			w3c := propagation.TraceContext{}
			for b.Loop() {
				ctx := w3c.Extract(context.Background(), propagation.MapCarrier{"traceparent": parent, "tracestate": state})
				sc := child.WithTraceState(trace.SpanContextFromContext(ctx).TraceState())
				out := propagation.MapCarrier{}
				w3c.Inject(trace.ContextWithSpanContext(ctx, sc), out)
				_, _ = out["traceparent"], out["tracestate"]
			}
		})
	}
}
