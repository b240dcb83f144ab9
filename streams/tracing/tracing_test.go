package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
// writes the span's own traceparent; with no valid span it gives the
// fallback.
func TestExtractInject(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx, span := tp.Tracer("t").Start(Extract(context.Background(), parent), "s")
	defer span.End()
	if got := span.(sdktrace.ReadOnlySpan).Parent().SpanID().String(); got != "00f067aa0ba902b7" {
		t.Fatalf("parent span %s, want 00f067aa0ba902b7", got)
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + span.SpanContext().SpanID().String() + "-01"
	if got := Inject(ctx, parent); got != want {
		t.Fatalf("Inject = %q, want %q", got, want)
	}
	if got := Inject(context.Background(), "fallback"); got != "fallback" {
		t.Fatalf("Inject without a span = %q, want the fallback", got)
	}
	if got := Extract(context.Background(), "garbage"); got != context.Background() {
		t.Fatal("a malformed traceparent gave a context")
	}
}
