package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// receiver is an OTLP/HTTP endpoint that keeps every export it is sent.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		msg := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, msg); err != nil {
			t.Errorf("export not an ExportTraceServiceRequest: %v", err)
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, msg)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) client() otlptrace.Client {
	return otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(r.URL+"/v1/traces"), otlptracehttp.WithInsecure())
}

func (r *receiver) take() []*collectortrace.ExportTraceServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.reqs
	r.reqs = nil
	return reqs
}

// stubs are spans with everything OTLP carries: every attribute type,
// events, links, status, dropped counts, a remote and a local parent, a
// trace state, two resources (one nil) and three scopes (one empty).
func stubs(t testing.TB) tracetest.SpanStubs {
	ts, err := trace.ParseTraceState("k=v,a=b")
	if err != nil {
		t.Fatal(err)
	}
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sc := func(sid byte, flags trace.TraceFlags, remote bool) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{sid, 1}, TraceFlags: flags, TraceState: ts, Remote: remote})
	}
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "s"), attribute.Int("pid", 7))
	other := resource.NewSchemaless(attribute.String("service.name", "t"))
	scope := instrumentation.Scope{Name: Scope, Version: "v1", SchemaURL: "https://example.com/s", Attributes: attribute.NewSet(attribute.Bool("x", true))}
	start := time.Unix(1700000000, 123456789)
	all := []attribute.KeyValue{
		attribute.String("s", "v"), attribute.String("empty", ""), attribute.Bool("t", true), attribute.Bool("f", false),
		attribute.Int64("i", -42), attribute.Int64("zero", 0), attribute.Float64("d", 2.5), attribute.Float64("dzero", 0),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, 0, -1}),
		attribute.Float64Slice("ds", []float64{0.5, 0}), attribute.StringSlice("ss", []string{"a", "", "c"}),
		attribute.StringSlice("none", nil), {Key: "e"}, attribute.ByteSlice("b", []byte{0, 1}), attribute.ByteSlice("nob", nil),
		attribute.Slice("mixed", attribute.IntValue(1), attribute.StringValue("x"), attribute.SliceValue(attribute.BoolValue(false))),
		attribute.Map("m", attribute.String("k", "v"), attribute.Map("inner", attribute.Float64("f", 1))),
		attribute.String("long", string(make([]byte, 300))),
	}
	return tracetest.SpanStubs{
		{
			Name: "gateway chain", SpanContext: sc(1, trace.FlagsSampled, false), Parent: sc(9, trace.FlagsSampled, true),
			SpanKind: trace.SpanKindServer, StartTime: start, EndTime: start.Add(time.Millisecond),
			Attributes: all, DroppedAttributes: 3,
			Events: []sdktrace.Event{
				{Name: "ev", Time: start.Add(time.Microsecond), Attributes: all[:3], DroppedAttributeCount: 1},
				{Name: "", Time: time.Unix(0, 0)},
			},
			DroppedEvents: 2,
			Links: []sdktrace.Link{
				{SpanContext: sc(5, trace.FlagsSampled|trace.FlagsRandom, true), Attributes: all[4:6], DroppedAttributeCount: 4},
				{SpanContext: sc(6, 0, false)},
			},
			DroppedLinks:         1,
			Status:               sdktrace.Status{Code: codes.Error, Description: "deadline_exceeded"},
			ChildSpanCount:       2,
			Resource:             res,
			InstrumentationScope: scope,
		},
		{
			Name: "process d", SpanContext: sc(2, trace.FlagsSampled, false), Parent: sc(1, trace.FlagsSampled, false),
			SpanKind: trace.SpanKindConsumer, StartTime: start, EndTime: start.Add(time.Second),
			Status: sdktrace.Status{Code: codes.Ok}, Resource: res, InstrumentationScope: instrumentation.Scope{Name: Scope},
		},
		{Name: "root", SpanContext: sc(3, 0, false), SpanKind: trace.SpanKindClient, Resource: other, InstrumentationScope: scope},
		{Name: "unnamed scope", SpanContext: sc(4, trace.FlagsSampled, false), SpanKind: trace.SpanKindProducer, Resource: nil},
		{Name: "handle d", SpanContext: sc(7, trace.FlagsSampled, false), Parent: sc(2, trace.FlagsSampled, false), SpanKind: trace.SpanKindInternal, Resource: res, InstrumentationScope: scope},
		{Name: "kindless", SpanContext: sc(8, trace.FlagsSampled, false), Resource: other},
	}
}

// TestExporterAgainstSDK holds NewExporter to the SDK's exporter: the
// same spans exported by both reach a receiver as equal messages.
func TestExporterAgainstSDK(t *testing.T) {
	ctx := context.Background()
	r := newReceiver(t)
	spans := stubs(t).Snapshots()

	sdkExp, err := otlptrace.New(ctx, r.client())
	if err != nil {
		t.Fatal(err)
	}
	if err := sdkExp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	want := r.take()
	exp, err := NewExporter(ctx, r.client())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second reuses the first's buffer
		if err := exp.ExportSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
		got := r.take()
		if len(got) != 1 || len(want) != 1 {
			t.Fatalf("%d and %d exports, want one each", len(got), len(want))
		}
		// The SDK's exporter orders resources as a map does: match them.
		g, w := got[0].GetResourceSpans(), want[0].GetResourceSpans()
		if len(g) != len(w) || len(g) != 3 {
			t.Fatalf("%d resource spans, the SDK's %d, want 3", len(g), len(w))
		}
		for _, wrs := range w {
			found := false
			for _, grs := range g {
				found = found || proto.Equal(grs, wrs)
			}
			if !found {
				t.Errorf("the SDK's resource spans not among ours:\n%v\nours:\n%v", wrs, g)
			}
		}
		if n := countSpans(g); n != len(spans) {
			t.Errorf("%d spans sent, want %d", n, len(spans))
		}
	}
	if err := exp.ExportSpans(ctx, nil); err != nil || len(r.take()) != 0 {
		t.Errorf("an empty export: err %v, or something was sent", err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	if err := exp.ExportSpans(ctx, spans); err == nil {
		t.Error("an export after shutdown succeeded")
	}
}

func countSpans(rss []*tracepb.ResourceSpans) int {
	n := 0
	for _, rs := range rss {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// TestExporterFails: a receiver's refusal is the export's error.
func TestExporterFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	exp, err := NewExporter(context.Background(), otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"), otlptracehttp.WithInsecure()))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	if err := exp.ExportSpans(context.Background(), stubs(t).Snapshots()); err == nil {
		t.Error("an export the receiver refused succeeded")
	}
}

// BenchmarkExport compares the SDK's exporter with NewExporter on a
// batch of 512 spans like a replica's process span (seven attributes),
// sent to a receiver that discards them.
func BenchmarkExport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
	}))
	defer srv.Close()
	client := func() otlptrace.Client {
		return otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"), otlptracehttp.WithInsecure())
	}
	res := resource.NewSchemaless(attribute.String("service.name", "sluice-dev"), attribute.Int("process.pid", 1))
	var batch tracetest.SpanStubs
	start := time.Now()
	for i := range 512 {
		batch = append(batch, tracetest.SpanStub{
			Name:        "process chain-adder",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{byte(i), 1}, SpanID: trace.SpanID{byte(i), 2}, TraceFlags: trace.FlagsSampled}),
			Parent:      trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{byte(i), 1}, SpanID: trace.SpanID{byte(i), 3}, TraceFlags: trace.FlagsSampled, Remote: true}),
			SpanKind:    trace.SpanKindConsumer, StartTime: start, EndTime: start.Add(time.Millisecond),
			Attributes: []attribute.KeyValue{
				attribute.String("sluice.app", "chain"), attribute.String("sluice.deployment", "adder"),
				attribute.String("sluice.request_id", "0123456789abcdef0123"), attribute.String("messaging.destination.name", "sl.chain.adder"),
				attribute.Int("messaging.destination.partition.id", 3), attribute.Int64("messaging.kafka.offset", int64(i)*1000),
				attribute.Float64("sluice.queue_wait_ms", 0.25),
			},
			Resource: res, InstrumentationScope: instrumentation.Scope{Name: Scope},
		})
	}
	spans := batch.Snapshots()
	run := func(b *testing.B, exp sdktrace.SpanExporter) {
		defer exp.Shutdown(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			if err := exp.ExportSpans(context.Background(), spans); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
	}
	b.Run("sdk", func(b *testing.B) {
		exp, err := otlptrace.New(context.Background(), client())
		if err != nil {
			b.Fatal(err)
		}
		run(b, exp)
	})
	b.Run("hand", func(b *testing.B) {
		exp, err := NewExporter(context.Background(), client())
		if err != nil {
			b.Fatal(err)
		}
		run(b, exp)
	})
}
