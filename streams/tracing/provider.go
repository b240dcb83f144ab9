package tracing

import (
	"os"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// queueSize is the batch span processor's queue unless
// OTEL_BSP_MAX_QUEUE_SIZE says otherwise. The SDK's 2048 holds a sixth
// of a second of a busy process's spans (nine a request at 1,500
// requests a second); an export that takes longer, as one does on a
// loaded machine, drops the spans that do not fit. 16384 spans hold
// about 16 MiB at most.
const queueSize = 16384

// NewProvider is the tracer provider a process traces with: every span
// it samples batched to exp (the batch span processor, which reads
// OTEL_BSP_* for its sizes and delay; its queue is queueSize unless
// OTEL_BSP_MAX_QUEUE_SIZE is set), with opts after (a resource, a
// sampler; without one the SDK reads OTEL_TRACES_SAMPLER). The commands
// install it (platform/cli) and BenchmarkTraceOverhead measures it.
func NewProvider(exp sdktrace.SpanExporter, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	var bsp []sdktrace.BatchSpanProcessorOption
	if os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" {
		bsp = append(bsp, sdktrace.WithMaxQueueSize(queueSize))
	}
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp, bsp...)}, opts...)...)
}
