package tracing

import (
	"context"
	"fmt"
	"math"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// NewExporter is an OTLP span exporter that sends through client (an
// otlptracehttp or otlptracegrpc client: its endpoint, headers,
// compression, TLS, timeout and retries, all read from OTEL_EXPORTER_OTLP_*
// as the SDK's own exporter reads them), started here. It sends what the
// SDK's exporter (otlptrace.New) sends, message for message, but writes
// the spans in the protobuf wire format itself: the SDK's exporter builds
// every span, attribute and value as a message and then marshals them by
// reflection, which took about as much CPU as the spans' start and end
// together. The written spans travel to the client inside each
// ResourceSpans as its unknown fields, which a marshal copies as they
// are. (The client's experimental self-observability, off unless
// OTEL_GO_X_OBSERVABILITY is set, counts the spans of the known fields
// alone, so it would count none.)
func NewExporter(ctx context.Context, client otlptrace.Client) (sdktrace.SpanExporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return &exporter{client: client}, nil
}

type exporter struct {
	client otlptrace.Client
	mu     sync.Mutex // one export at a time writes buf
	buf    []byte
	stop   sync.Once
}

// group is the spans of one resource and one scope, in their order.
type group struct {
	res   *resource.Resource
	key   attribute.Distinct
	scope instrumentation.Scope
	spans []sdktrace.ReadOnlySpan
}

// The field numbers of opentelemetry-proto (trace/v1, common/v1,
// resource/v1) that the exporter writes.
const (
	rsResource, rsScopeSpans, rsSchemaURL                = 1, 2, 3
	ssScope, ssSpans, ssSchemaURL                        = 1, 2, 3
	scName, scVersion, scAttributes                      = 1, 2, 3
	resAttributes                                        = 1
	kvKey, kvValue                                       = 1, 2
	avString, avBool, avInt, avDouble                    = 1, 2, 3, 4
	avArray, avKvlist, avBytes                           = 5, 6, 7
	listValues                                           = 1 // ArrayValue and KeyValueList
	spTraceID, spSpanID, spTraceState, spParentID        = 1, 2, 3, 4
	spName, spKind, spStart, spEnd                       = 5, 6, 7, 8
	spAttributes, spDroppedAttrs, spEvents               = 9, 10, 11
	spDroppedEvents, spLinks, spDroppedLinks             = 12, 13, 14
	spStatus, spFlags                                    = 15, 16
	evTime, evName, evAttributes, evDropped              = 1, 2, 3, 4
	lkTraceID, lkSpanID, lkAttributes, lkDropped         = 1, 2, 4, 5
	lkFlags                                              = 6
	stMessage, stCode                                    = 2, 3
	flagHasIsRemote, flagIsRemote                 uint32 = 0x100, 0x200
)

// ExportSpans sends spans in one request: a ResourceSpans for each
// resource, holding a ScopeSpans for each of its scopes, in the order
// they first come.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	var groups []group
	for _, s := range spans {
		if s == nil {
			continue
		}
		res, scope := s.Resource(), s.InstrumentationScope()
		key := res.Equivalent()
		i := 0
		for i < len(groups) && (groups[i].key != key || groups[i].scope != scope) {
			i++
		}
		if i == len(groups) {
			groups = append(groups, group{res: res, key: key, scope: scope})
		}
		groups[i].spans = append(groups[i].spans, s)
	}
	if len(groups) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// One ResourceSpans a resource, its scopes' groups in it.
	var out []*tracepb.ResourceSpans
	b := e.buf[:0]
	for i, g := range groups {
		if hasResource(groups[:i], g.key) {
			continue // written with the resource's first group
		}
		start := len(b)
		if g.res != nil {
			b = appendMessage(b, rsResource, func(b []byte) []byte {
				for it := g.res.Iter(); it.Next(); {
					b = appendKeyValue(b, resAttributes, it.Attribute())
				}
				return b
			})
		}
		for _, h := range groups[i:] {
			if h.key == g.key {
				b = appendMessage(b, rsScopeSpans, func(b []byte) []byte { return appendScopeSpans(b, h) })
			}
		}
		b = appendString(b, rsSchemaURL, g.res.SchemaURL())
		rs := &tracepb.ResourceSpans{}
		rs.ProtoReflect().SetUnknown(protoreflect.RawFields(b[start:len(b):len(b)]))
		out = append(out, rs)
	}
	e.buf = b
	if err := e.client.UploadTraces(ctx, out); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// hasResource reports whether one of gs is of the resource key names.
func hasResource(gs []group, key attribute.Distinct) bool {
	for _, g := range gs {
		if g.key == key {
			return true
		}
	}
	return false
}

func (e *exporter) Shutdown(ctx context.Context) error {
	var err error
	e.stop.Do(func() { err = e.client.Stop(ctx) })
	return err
}

func appendScopeSpans(b []byte, g group) []byte {
	if g.scope != (instrumentation.Scope{}) {
		b = appendMessage(b, ssScope, func(b []byte) []byte {
			b = appendString(b, scName, g.scope.Name)
			b = appendString(b, scVersion, g.scope.Version)
			for it := g.scope.Attributes.Iter(); it.Next(); {
				b = appendKeyValue(b, scAttributes, it.Attribute())
			}
			return b
		})
	}
	for _, s := range g.spans {
		b = appendMessage(b, ssSpans, func(b []byte) []byte { return appendSpan(b, s) })
	}
	return appendString(b, ssSchemaURL, g.scope.SchemaURL)
}

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc, parent := s.SpanContext(), s.Parent()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, spTraceID, tid[:])
	b = appendBytes(b, spSpanID, sid[:])
	b = appendString(b, spTraceState, sc.TraceState().String())
	if pid := parent.SpanID(); pid.IsValid() {
		b = appendBytes(b, spParentID, pid[:])
	}
	b = appendString(b, spName, s.Name())
	b = appendVarint(b, spKind, uint64(spanKind(s.SpanKind())))
	b = appendFixed64(b, spStart, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64(b, spEnd, unixNano(s.EndTime().UnixNano()))
	for _, kv := range s.Attributes() {
		b = appendKeyValue(b, spAttributes, kv)
	}
	b = appendVarint(b, spDroppedAttrs, clamp32(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		b = appendMessage(b, spEvents, func(b []byte) []byte {
			b = appendFixed64(b, evTime, unixNano(ev.Time.UnixNano()))
			b = appendString(b, evName, ev.Name)
			for _, kv := range ev.Attributes {
				b = appendKeyValue(b, evAttributes, kv)
			}
			return appendVarint(b, evDropped, clamp32(ev.DroppedAttributeCount))
		})
	}
	b = appendVarint(b, spDroppedEvents, clamp32(s.DroppedEvents()))
	for _, l := range s.Links() {
		b = appendMessage(b, spLinks, func(b []byte) []byte {
			tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			b = appendBytes(b, lkTraceID, tid[:])
			b = appendBytes(b, lkSpanID, sid[:])
			for _, kv := range l.Attributes {
				b = appendKeyValue(b, lkAttributes, kv)
			}
			b = appendVarint(b, lkDropped, clamp32(l.DroppedAttributeCount))
			return appendFixed32(b, lkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		})
	}
	b = appendVarint(b, spDroppedLinks, clamp32(s.DroppedLinks()))
	st := s.Status()
	b = appendMessage(b, spStatus, func(b []byte) []byte {
		b = appendString(b, stMessage, st.Description)
		return appendVarint(b, stCode, uint64(statusCode(st.Code)))
	})
	return appendFixed32(b, spFlags, spanFlags(sc.TraceFlags(), parent))
}

// spanFlags are a span's (or link's) trace flags and whether its parent
// (the linked context) is remote, as OTLP has them.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagHasIsRemote
	if parent.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

func spanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	}
	return tracepb.Span_SPAN_KIND_UNSPECIFIED
}

func statusCode(c codes.Code) tracepb.Status_StatusCode {
	switch c {
	case codes.Ok:
		return tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	return appendMessage(b, num, func(b []byte) []byte {
		b = appendString(b, kvKey, string(kv.Key))
		return appendMessage(b, kvValue, func(b []byte) []byte { return appendValue(b, kv.Value) })
	})
}

// appendValue writes v as the fields of an AnyValue. A oneof's member is
// written even when it is its type's zero.
func appendValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.STRING:
		return appendOneofBytes(b, avString, v.AsString())
	case attribute.BOOL:
		var x uint64
		if v.AsBool() {
			x = 1
		}
		return protowire.AppendVarint(protowire.AppendTag(b, avBool, protowire.VarintType), x)
	case attribute.INT64:
		return protowire.AppendVarint(protowire.AppendTag(b, avInt, protowire.VarintType), uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return protowire.AppendFixed64(protowire.AppendTag(b, avDouble, protowire.Fixed64Type), math.Float64bits(v.AsFloat64()))
	case attribute.BYTESLICE:
		return appendOneofBytes(b, avBytes, string(v.AsByteSlice()))
	case attribute.BOOLSLICE:
		return appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		return appendArray(b, v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		return appendMessage(b, avKvlist, func(b []byte) []byte {
			for _, kv := range v.AsMap() {
				b = appendKeyValue(b, listValues, kv)
			}
			return b
		})
	case attribute.EMPTY:
		return b
	}
	return appendOneofBytes(b, avString, "INVALID")
}

func appendArray[T any](b []byte, vs []T, value func(T) attribute.Value) []byte {
	return appendMessage(b, avArray, func(b []byte) []byte {
		for _, x := range vs {
			b = appendMessage(b, listValues, func(b []byte) []byte { return appendValue(b, value(x)) })
		}
		return b
	})
}

// appendMessage writes field num holding the message enc writes: its
// length is reserved as one byte and the message moved on when it needs
// more.
func appendMessage(b []byte, num protowire.Number, enc func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	at := len(b)
	b = enc(append(b, 0))
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size-1)...)
	copy(b[at+size:], b[at+1:at+1+n])
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}

// The scalar fields of proto3, left out when zero.

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendOneofBytes(b, num, s)
}

func appendOneofBytes(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), v)
}

func unixNano(ns int64) uint64 { return uint64(max(ns, 0)) }

func clamp32(n int) uint64 { return uint64(min(max(n, 0), math.MaxUint32)) }
