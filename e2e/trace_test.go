package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/tracing"
)

// traceOn makes the process trace into a span recorder until the test
// ends. Tracing is process-wide: the tests that use it are not parallel.
func traceOn(t *testing.T, sampler sdktrace.Sampler) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	tracing.Set(tp)
	t.Cleanup(func() {
		tracing.Set(nil)
		_ = tp.Shutdown(context.Background())
	})
	return rec
}

// A chain request is one trace: the caller's traceparent is the root's
// parent, and every hop is the child of the one that sent its record:
// the gateway's server span, its produce (a client span), the ingress's
// process and handle spans, the handle call to the adder (a client span
// under the ingress's handler), the adder's process span, and the
// multiplier's, whose record the adder forwarded along the continuation
// (its parent is the adder's process span, not the ingress's call). The
// caller's tracestate is every span's: each hop read it from the record
// it took, beside the traceparent.
func TestTraceChain(t *testing.T) {
	rec := traceOn(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodPost, url("/chain"), strings.NewReader("5"))
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	req.Header.Set("tracestate", testTraceState)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /chain = %d", resp.StatusCode)
	}
	want := []string{"gateway chain", "process Ingress", "handle Ingress", "process Adder", "handle Adder", "process Multiplier", "handle Multiplier"}
	spans := map[string]sdktrace.ReadOnlySpan{} // by name; the calls by name and parent
	var calls []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(10 * time.Second)
	for {
		clear(spans)
		calls = calls[:0]
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() != traceID {
				t.Fatalf("span %q is in trace %s, not the caller's %s", s.Name(), s.SpanContext().TraceID(), traceID)
			}
			if got := s.SpanContext().TraceState().String(); got != testTraceState {
				t.Fatalf("span %q has tracestate %q, not the caller's %q", s.Name(), got, testTraceState)
			}
			if strings.HasPrefix(s.Name(), "call ") {
				calls = append(calls, s)
				continue
			}
			spans[s.Name()] = s
		}
		if len(spans) >= len(want) && len(calls) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range want {
		if spans[name] == nil {
			t.Fatalf("no span %q; have %v and %d calls", name, spanNames(spans), len(calls))
		}
	}
	if len(calls) != 2 {
		t.Fatalf("%d call spans, want 2 (the gateway's produce, the ingress's handle call)", len(calls))
	}
	parentOf := func(s sdktrace.ReadOnlySpan) trace.SpanID { return s.Parent().SpanID() }
	byID := map[trace.SpanID]string{}
	for name, s := range spans {
		byID[s.SpanContext().SpanID()] = name
	}
	for _, c := range calls {
		byID[c.SpanContext().SpanID()] = c.Name()
	}
	gw := spans["gateway chain"]
	if got := parentOf(gw).String(); got != "00f067aa0ba902b7" || gw.SpanKind() != trace.SpanKindServer {
		t.Fatalf("gateway span: parent %s kind %s, want the caller's span 00f067aa0ba902b7 and server", got, gw.SpanKind())
	}
	var gwCall, handleCall sdktrace.ReadOnlySpan
	for _, c := range calls {
		switch byID[parentOf(c)] {
		case "gateway chain":
			gwCall = c
		case "handle Ingress":
			handleCall = c
		}
	}
	if gwCall == nil || handleCall == nil {
		t.Fatalf("call spans' parents: %s, %s; want the gateway's and the ingress handler's", byID[parentOf(calls[0])], byID[parentOf(calls[1])])
	}
	if gwCall.SpanKind() != trace.SpanKindClient || handleCall.SpanKind() != trace.SpanKindClient {
		t.Fatalf("call spans are %s and %s, want client", gwCall.SpanKind(), handleCall.SpanKind())
	}
	parents := map[string]string{
		"process Ingress":    gwCall.Name(),
		"handle Ingress":     "process Ingress",
		"process Adder":      handleCall.Name(),
		"handle Adder":       "process Adder",
		"process Multiplier": "process Adder", // forwarded along the continuation
		"handle Multiplier":  "process Multiplier",
	}
	for child, parent := range parents {
		if got := byID[parentOf(spans[child])]; got != parent {
			t.Errorf("parent of %q is %q, want %q", child, got, parent)
		}
	}
	if pa := parentOf(spans["process Ingress"]); pa != gwCall.SpanContext().SpanID() {
		t.Errorf("process Ingress's parent is not the gateway's produce")
	}
	if pa := parentOf(spans["process Adder"]); pa != handleCall.SpanContext().SpanID() {
		t.Errorf("process Adder's parent is not the ingress's handle call")
	}
	for _, s := range []string{"process Ingress", "process Adder", "process Multiplier"} {
		if spans[s].SpanKind() != trace.SpanKindConsumer || !hasAttr(spans[s], "sluice.queue_wait_ms") {
			t.Errorf("%s: kind %s, want consumer with sluice.queue_wait_ms", s, spans[s].SpanKind())
		}
	}
}

func spanNames(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func hasAttr(s sdktrace.ReadOnlySpan, key string) bool {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return true
		}
	}
	return false
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// A failed request's id and trace id are on the JSON lines about it: the
// gateway's access log, the handler's own line (serve.Logger) and the
// replica's (the failure), with tracing on and, from the caller's
// traceparent alone, with it off.
func TestTraceLogIDs(t *testing.T) {
	var logs, access syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log) // serve.Logger's
	t.Cleanup(func() { slog.SetDefault(prev) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := cli.StartDev(ctx, cli.DevConfig{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Brokers: plat.Brokers, Prefix: "l" + streams.Instance(),
		Registry: registry, Apps: []*spec.App{faultsApp().Spec()}, Log: log,
		AccessLog: slog.New(slog.NewJSONHandler(&access, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, on := range []bool{false, true} {
		if on {
			traceOn(t, sdktrace.AlwaysSample())
		}
		traceID := "0af7651916cd43dd8448eb211c80319c"
		if on {
			traceID = "1af7651916cd43dd8448eb211c80319d"
		}
		status, id := postTraced(t, "http://"+d.Addr+"/faults", `{"fail":"logged"}`, "00-"+traceID+"-b7ad6b7169203331-01")
		if status != http.StatusBadRequest || id == "" {
			t.Fatalf("tracing %v: POST /faults = %d, request id %q; want 400 and an id", on, status, id)
		}
		about := func(b *syncBuffer, msg string) map[string]any {
			deadline := time.Now().Add(5 * time.Second)
			for {
				for _, l := range b.lines() {
					if l["msg"] == msg && l["request_id"] == id {
						return l
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("tracing %v: no JSON line %q with request_id %s", on, msg, id)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		for _, l := range []map[string]any{about(&access, "call"), about(&logs, "failing as asked"), about(&logs, "request failed")} {
			if l["trace_id"] != traceID {
				t.Errorf("tracing %v: line %q has trace_id %v, want %s", on, l["msg"], l["trace_id"], traceID)
			}
		}
		if l := about(&access, "call"); l["app"] != "faults" || l["code"] != string(streams.CodeInvalidArgument) || l["route"] != "/faults" {
			t.Errorf("access line %v: want app faults, route /faults, code invalid_argument", l)
		}
	}
}

// postTraced POSTs body to u with the traceparent given and returns the
// status and the request id the gateway answered with.
func postTraced(t *testing.T, u, body, traceparent string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Sluice-Request-Id")
}
