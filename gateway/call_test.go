package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Both transports' trace context and caller headers land in the envelope
// the same way: traceparent, x-* headers, nothing else; Predict's own
// headers win over metadata of the same name.
func TestEnvelopeFromTransports(t *testing.T) {
	t.Parallel()
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h := http.Header{}
	h.Set("Traceparent", trace)
	h.Set("X-Tenant", "acme")
	h.Set("Authorization", "Bearer secret")
	env := httpEnvelope(h)
	if env.Trace != trace || env.RequestHeaders()["x-tenant"] != "acme" || len(env.Request) != 1 {
		t.Errorf("REST: trace %q, headers %v; want the traceparent and x-tenant only", env.Trace, env.RequestHeaders())
	}

	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", trace, "x-tenant", "acme", "authorization", "Bearer secret"))
	env = grpcEnvelope(ctx, nil)
	if env.Trace != trace || env.RequestHeaders()["x-tenant"] != "acme" || len(env.Request) != 1 {
		t.Errorf("gRPC: trace %q, headers %v; want the traceparent and x-tenant only", env.Trace, env.RequestHeaders())
	}
	const other = "00-11111111111111111111111111111111-2222222222222222-01"
	env = grpcEnvelope(ctx, map[string]string{"Traceparent": other, "X-Tenant": "globex", "x-region": "eu"})
	if env.Trace != other || env.RequestHeaders()["x-tenant"] != "globex" || env.RequestHeaders()["x-region"] != "eu" || len(env.Request) != 2 {
		t.Errorf("Predict headers: trace %q, headers %v; want Predict's over metadata", env.Trace, env.RequestHeaders())
	}
	if env := grpcEnvelope(context.Background(), nil); env.Trace != "" || env.TraceState != "" || len(env.Request) != 0 {
		t.Errorf("no metadata: %+v", env)
	}
}

// The caller's tracestate travels beside its traceparent from either
// transport; a header sent twice is one list, and one too long to carry
// is dropped.
func TestTraceStateFromTransports(t *testing.T) {
	t.Parallel()
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h := http.Header{}
	h.Set("Traceparent", trace)
	h.Add("Tracestate", "congo=t61rcWkgMzE")
	h.Add("Tracestate", "rojo=00f067aa0ba902b7")
	if env := httpEnvelope(h); env.Trace != trace || env.TraceState != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
		t.Errorf("REST: trace %q, state %q; want both values as one list", env.Trace, env.TraceState)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", trace, "tracestate", "congo=t61rcWkgMzE"))
	if env := grpcEnvelope(ctx, nil); env.TraceState != "congo=t61rcWkgMzE" {
		t.Errorf("gRPC: state %q, want the metadata's", env.TraceState)
	}
	if env := grpcEnvelope(ctx, map[string]string{"Tracestate": "a=1"}); env.TraceState != "a=1" {
		t.Errorf("Predict headers: state %q, want Predict's over metadata", env.TraceState)
	}
	long := http.Header{}
	long.Set("Tracestate", "k="+strings.Repeat("v", maxTraceState))
	if env := httpEnvelope(long); env.TraceState != "" {
		t.Errorf("a tracestate of %d bytes was kept", len(long.Get("Tracestate")))
	}
}

// A caller's timeout, however long, is cut to MaxTimeout.
func TestDeadlineCapped(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{Limits: Limits{MaxTimeout: time.Minute}.WithDefaults()}}
	d, err := parseTimeout(fmt.Sprintf("%dns", int64(math.MaxInt64)))
	if err != nil {
		t.Fatal(err)
	}
	for _, timeout := range []time.Duration{d, 24 * time.Hour, 0} {
		ctx, cancel := s.deadline(context.Background(), route{timeout: 2 * time.Hour}, timeout)
		at, _ := ctx.Deadline()
		cancel()
		if left := time.Until(at); left > time.Minute || left < 55*time.Second {
			t.Errorf("timeout %v: deadline in %v, want the 1m cap", timeout, left)
		}
	}
}

func TestRequestedOutputs(t *testing.T) {
	t.Parallel()
	got := []oip.Tensor{{Name: "A"}, {Name: "B"}}
	req := func(names ...string) *oip.InferRequest {
		r := &oip.InferRequest{}
		for _, n := range names {
			r.Outputs = append(r.Outputs, oip.RequestedOutput{Name: n})
		}
		return r
	}
	if out, err := requestedOutputs("m", req(), got); err != nil || len(out) != 2 {
		t.Errorf("none asked: %v, %v; want both", out, err)
	}
	if out, err := requestedOutputs("m", req("B"), got); err != nil || len(out) != 1 || out[0].Name != "B" {
		t.Errorf("B asked: %v, %v; want B alone", out, err)
	}
	if _, err := requestedOutputs("m", req("A", "C"), got); streams.CodeOf(err) != streams.CodeInvalidArgument || !strings.Contains(err.Error(), `no output "C" (it returned: A, B)`) {
		t.Errorf("C asked: %v; want invalid_argument naming C and what came back", err)
	}
	if err := checkOutputs("m", req("C"), []string{"A", "B"}); streams.CodeOf(err) != streams.CodeInvalidArgument || !strings.Contains(err.Error(), `model m has no output "C" (its outputs: A, B)`) {
		t.Errorf("declared: %v", err)
	}
	if err := checkOutputs("m", req("C"), nil); err != nil {
		t.Errorf("nothing declared: %v; want the reply to tell", err)
	}
}

func TestConfigType(t *testing.T) {
	t.Parallel()
	for dt, want := range map[string]string{"FP32": "TYPE_FP32", "BYTES": "TYPE_STRING", "INT64": "TYPE_INT64", "BOOL": "TYPE_BOOL"} {
		if got := configType(dt); got != want {
			t.Errorf("%s: %s, want %s", dt, got, want)
		}
	}
}

// A client that sends its headers and then stalls the body is answered
// 408 once it has sent nothing for BodyIdleTimeout, and one that trickles
// it once BodyTimeout has passed; either way its connection is closed, so
// it holds no descriptor. Many at once are all cut.
func TestStalledBodies(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{Limits: Limits{BodyIdleTimeout: 200 * time.Millisecond, BodyTimeout: 700 * time.Millisecond}.WithDefaults(),
		Log: slog.New(slog.DiscardHandler)}, metrics: newMetrics()}
	s.apps.Store(&appTable{byName: map[string]route{}})
	s.setApps([]*spec.App{{Name: "slow", RoutePrefix: "/slow"}})
	srv := httptest.NewServer(s.Handler(http.NotFoundHandler()))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// send writes the request's head and part of its body, then trickles a
	// byte every gap until the connection closes; it returns the status
	// line and how long the gateway took.
	send := func(t *testing.T, path string, gap time.Duration) (string, time.Duration) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Error(err) // not Fatal: send runs on other goroutines too
			return "", 0
		}
		defer c.Close()
		start := time.Now()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":", path)
		if gap > 0 {
			go func() {
				for {
					time.Sleep(gap)
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}()
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		status, err := br.ReadString('\n')
		if err != nil {
			t.Errorf("no answer: %v", err)
			return "", 0
		}
		took := time.Since(start)
		if _, err := io.Copy(io.Discard, br); err != nil { // the gateway closes the connection
			t.Errorf("connection not closed after the answer: %v", err)
		}
		return strings.TrimSpace(status), took
	}

	for _, path := range []string{"/slow", "/v2/models/slow/infer"} {
		status, took := send(t, path, 0)
		if status != "HTTP/1.1 408 Request Timeout" || took < 200*time.Millisecond || took > 3*time.Second {
			t.Errorf("%s stalled: %q after %v; want 408 after the 200ms idle bound", path, status, took)
		}
	}
	status, took := send(t, "/slow", 50*time.Millisecond)
	if status != "HTTP/1.1 408 Request Timeout" || took < 700*time.Millisecond || took > 3*time.Second {
		t.Errorf("trickled: %q after %v; want 408 after the 700ms bound", status, took)
	}

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if status, _ := send(t, "/slow", 0); status != "HTTP/1.1 408 Request Timeout" {
				t.Errorf("one of 50 stalled: %q", status)
			}
		})
	}
	wg.Wait()
}

// A gateway rule never sends a request read as one kind of application
// (an HTTP ingress, or not) to the other kind: it would be refused there,
// or answered in the wrong form.
func TestRuleKeepsKind(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{Limits: Limits{}.WithDefaults(), Log: slog.New(slog.DiscardHandler)}, metrics: newMetrics()}
	s.apps.Store(&appTable{byName: map[string]route{}})
	web := func(name string) *spec.App {
		return &spec.App{Name: name, RoutePrefix: "/" + name, Ingress: "W", Deployments: []spec.Deployment{{Name: "W", HTTP: true}}}
	}
	plainA := &spec.App{Name: "plain-a", RoutePrefix: "/plain-a", Rules: []spec.Rule{{App: "web-b"}}}
	plainB := &spec.App{Name: "plain-b", RoutePrefix: "/plain-b", Rules: []spec.Rule{{App: "plain-c"}}}
	plainC := &spec.App{Name: "plain-c", RoutePrefix: "/plain-c"}
	webA := web("web-a")
	webA.Rules = []spec.Rule{{App: "plain-c"}}
	webC := web("web-c")
	webC.Rules = []spec.Rule{{App: "web-b"}}
	s.setApps([]*spec.App{plainA, plainB, plainC, webA, web("web-b"), webC})
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"plain-a", "web-b", false},
		{"web-a", "plain-c", false},
		{"plain-b", "plain-c", true},
		{"web-c", "web-b", true},
	} {
		rt, _ := s.byName(tc.from)
		got, err := s.applyRules(context.Background(), rt, &protocol.Envelope{}, nil)
		switch {
		case tc.ok && (err != nil || got.app != tc.to):
			t.Errorf("%s → %s: %s, %v; want sent", tc.from, tc.to, got.app, err)
		case !tc.ok && (streams.CodeOf(err) != streams.CodeFailedPrecondition || !strings.Contains(err.Error(), "same kind")):
			t.Errorf("%s → %s: %v; want failed_precondition naming the kinds", tc.from, tc.to, err)
		}
	}
}
