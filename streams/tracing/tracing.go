// Package tracing carries OpenTelemetry spans across the records of a
// request. A record's trace context is its W3C traceparent header, with
// the tracestate header beside it; each hop starts its span as that
// context's child and writes its own span (and the trace state it
// inherited) into the records it sends, so the next hop's span is its
// child.
//
// Tracing is off until Set installs a provider: then Tracer returns nil
// and every caller skips its spans at the cost of one atomic load.
package tracing

import (
	"context"
	"encoding/hex"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of every span the project starts.
const Scope = "github.com/sluice-serve/sluice"

type holder struct{ t trace.Tracer }

var current atomic.Pointer[holder]

// Set makes the process trace with tp; nil turns tracing off.
func Set(tp trace.TracerProvider) {
	if tp == nil {
		current.Store(nil)
		return
	}
	current.Store(&holder{t: tp.Tracer(Scope)})
}

// Tracer is the process's tracer, or nil when tracing is off.
func Tracer() trace.Tracer {
	if h := current.Load(); h != nil {
		return h.t
	}
	return nil
}

// Extract returns ctx with the remote span context that traceparent and
// tracestate name; ctx itself when traceparent is empty or malformed. A
// malformed tracestate (W3C's rules: at most 32 list members of
// key=value in their alphabets) is left out: the spans of the hop, and
// what it writes on, carry none. It reads the header by hand, as the
// W3C Trace Context propagator would, without its carrier's map and
// regular expression.
func Extract(ctx context.Context, traceparent, tracestate string) context.Context {
	sc, ok := parseParent(traceparent)
	if !ok {
		return ctx
	}
	if tracestate != "" {
		if ts, err := trace.ParseTraceState(tracestate); err == nil {
			sc = sc.WithTraceState(ts)
		}
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// Inject returns the traceparent and tracestate of ctx's span, or
// traceparent and tracestate themselves when ctx has no valid span
// context.
func Inject(ctx context.Context, traceparent, tracestate string) (string, string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return traceparent, tracestate
	}
	return formatParent(sc), sc.TraceState().String()
}

// parseParent reads a W3C traceparent as the W3C Trace Context
// propagator does: version-traceid-spanid-flags in lower-case hex, the
// ids not all zero, the version not ff; version 00 ends after the flags
// (a '-' may follow, nothing more) and sets no flags but sampled and
// random; a later version may go on after a '-'.
func parseParent(tp string) (trace.SpanContext, bool) {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || len(tp) > 55 && tp[55] != '-' {
		return trace.SpanContext{}, false
	}
	version, ok := hexByte(tp[0], tp[1])
	if !ok || version == 0xff {
		return trace.SpanContext{}, false
	}
	flags, ok := hexByte(tp[53], tp[54])
	if !ok || version == 0 && (len(tp) > 56 || flags > 3) {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	if !hexInto(tid[:], tp[3:35]) || !hexInto(sid[:], tp[36:52]) || !tid.IsValid() || !sid.IsValid() {
		return trace.SpanContext{}, false
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags) & knownFlags, Remote: true,
	}), true
}

// knownFlags are the trace flags W3C defines: sampled and random.
const knownFlags = trace.FlagsSampled | trace.FlagsRandom

// formatParent writes sc as a version 00 traceparent.
func formatParent(sc trace.SpanContext) string {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	f := byte(sc.TraceFlags() & knownFlags)
	b[53], b[54] = lowerHex[f>>4], lowerHex[f&0xf]
	return string(b[:])
}

const lowerHex = "0123456789abcdef"

// hexInto decodes lower-case hex s into dst (len(s) == 2*len(dst)).
func hexInto(dst []byte, s string) bool {
	for i := range dst {
		b, ok := hexByte(s[2*i], s[2*i+1])
		if !ok {
			return false
		}
		dst[i] = b
	}
	return true
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := nibble(hi)
	l, ok2 := nibble(lo)
	return h<<4 | l, ok1 && ok2
}

// nibble is the value of one lower-case hex digit (W3C forbids upper case).
func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// TraceID is the trace id of a W3C traceparent
// (version-traceid-spanid-flags), or "" when it names none.
func TraceID(traceparent string) string {
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' {
		return ""
	}
	id := traceparent[3:35]
	if id == "00000000000000000000000000000000" {
		return ""
	}
	return id
}

// Unsampled reports whether traceparent is well formed and its caller
// did not sample the trace (the sampled flag clear). Under the
// parent-based sampler such a record's spans would record nothing: a hop
// skips them and passes the traceparent on as it came, which carries the
// same decision to the next hop at no cost.
func Unsampled(traceparent string) bool {
	if TraceID(traceparent) == "" || len(traceparent) != 55 || traceparent[52] != '-' {
		return false
	}
	switch traceparent[54] {
	case '0', '2', '4', '6', '8', 'a', 'c', 'e':
		return true
	}
	return false
}
