package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpSpan is one span an OTLP/HTTP export carried.
type otlpSpan struct {
	service, name, trace, id, parent, state string
	pid                                     int64
}

// otlpReceiver is an OTLP/HTTP trace receiver: it keeps every span it is
// sent.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []otlpSpan
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		var msg collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			var service string
			var pid int64
			for _, a := range rs.GetResource().GetAttributes() {
				switch a.GetKey() {
				case "service.name":
					service = a.GetValue().GetStringValue()
				case "process.pid":
					pid = a.GetValue().GetIntValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					r.spans = append(r.spans, otlpSpan{service: service, name: s.GetName(), trace: hex.EncodeToString(s.GetTraceId()),
						id: hex.EncodeToString(s.GetSpanId()), parent: hex.EncodeToString(s.GetParentSpanId()), pid: pid, state: s.GetTraceState()})
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) trace(id string) []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []otlpSpan
	for _, s := range r.spans {
		if s.trace == id {
			out = append(out, s)
		}
	}
	return out
}

// On the production topology a chain request is one trace across
// processes: `sluice gateway` and the replica processes of `sluice node`
// export OTLP over HTTP (configured by OTEL_EXPORTER_OTLP_ENDPOINT alone)
// to a receiver in the test, and the spans each process sent link up:
// the gateway's produce is the parent of the ingress replica's span, the
// ingress replica's handle call the adder's, and the adder's process span
// the multiplier's (the forwarded continuation), each in its own process.
func TestTraceNode(t *testing.T) {
	rcv := newOTLPReceiver(t)
	n := startNodeWith(t, nil, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL, "OTEL_BSP_SCHEDULE_DELAY=100",
		"SLUICE_LOG_FORMAT=json", "SLUICE_ACCESS_LOG=1", "SLUICE_DEBUG=1"})
	spec := writeFile(t, "tchain.yaml", `name: tchain
route_prefix: /tchain
ingress: Ingress
deployments:
  - name: Ingress
    handler: Ingress
    args: [{handle: Adder}, {handle: Multiplier}]
  - name: Adder
    handler: Adder
    args: [1]
  - name: Multiplier
    handler: Multiplier
    args: [2]
`)
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	const traceID = "5bf92f3577b34da6a3ce929d0e0e4737"
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, "http://"+n.addr+"/tchain", strings.NewReader("5"))
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		req.Header.Set("tracestate", testTraceState)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "12" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from /tchain: %v\n%s", err, n.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The gateway's access log (JSON, SLUICE_ACCESS_LOG) names the call
	// with the caller's trace id.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n.errw.mu.Lock()
		logs := n.stderr.String()
		n.errw.mu.Unlock()
		if accessLine(logs, "tchain", traceID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line for tchain with trace_id %s:\n%s", traceID, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	byName := map[string]otlpSpan{}
	byID := map[string]otlpSpan{}
	want := []string{"gateway tchain", "process Ingress", "process Adder", "process Multiplier", "handle Ingress"}
	for deadline := time.Now().Add(30 * time.Second); ; {
		clear(byName)
		clear(byID)
		for _, s := range rcv.trace(traceID) {
			byID[s.id] = s
			if _, ok := byName[s.name]; !ok || !strings.HasPrefix(s.name, "call ") {
				byName[s.name] = s
			}
		}
		done := true
		for _, w := range want {
			if _, ok := byName[w]; !ok {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, w := range want {
		if _, ok := byName[w]; !ok {
			t.Fatalf("no span %q in trace %s; received %d spans of it", w, traceID, len(rcv.trace(traceID)))
		}
	}
	parent := func(name string) otlpSpan { return byID[byName[name].parent] }
	if gw := byName["gateway tchain"]; gw.service != "sluice-gateway" || gw.parent != "00f067aa0ba902b7" {
		t.Errorf("gateway span: service %q parent %q, want sluice-gateway under the caller's 00f067aa0ba902b7", gw.service, gw.parent)
	}
	if p := parent("process Ingress"); p.service != "sluice-gateway" || !strings.HasPrefix(p.name, "call ") {
		t.Errorf("process Ingress's parent is %q of %q, want the gateway's call span", p.name, p.service)
	}
	ingress := byName["process Ingress"].pid
	if p := parent("process Adder"); p.pid != ingress || !strings.HasPrefix(p.name, "call ") || byID[p.parent].name != "handle Ingress" {
		t.Errorf("process Adder's parent is %q of %q, want the ingress replica's handle call", p.name, p.service)
	}
	if p := parent("process Multiplier"); p.name != "process Adder" {
		t.Errorf("process Multiplier's parent is %q, want process Adder (the forwarded continuation)", p.name)
	}
	pids := map[int64]string{byName["gateway tchain"].pid: "gateway"}
	for _, name := range []string{"process Ingress", "process Adder", "process Multiplier"} {
		s := byName[name]
		if s.service != "sluice-replica" || s.pid == 0 || pids[s.pid] != "" {
			t.Errorf("%s was exported by %q pid %d (seen: %v), want a replica process of its own", name, s.service, s.pid, pids)
		}
		pids[s.pid] = name
	}
	for _, s := range rcv.trace(traceID) {
		if s.state != testTraceState {
			t.Errorf("span %q of pid %d has tracestate %q, want the caller's %q", s.name, s.pid, s.state, testTraceState)
		}
	}
	t.Logf("trace %s: %d spans from %d processes (pids %v)", traceID, len(rcv.trace(traceID)), len(pids), pids)

	// The JSON logs of each process a request crosses carry its trace id:
	// the gateway's access line and the ingress replica process's own line
	// about the request (a body Ingress cannot decode: "request failed",
	// at debug level, SLUICE_DEBUG).
	const failTrace = "6bf92f3577b34da6a3ce929d0e0e4738"
	status, id := postTraced(t, "http://"+n.addr+"/tchain", `"not a number"`, "00-"+failTrace+"-00f067aa0ba902b7-01")
	if status != http.StatusBadRequest || id == "" {
		t.Fatalf("POST /tchain with a string = %d, request id %q; want 400 and an id", status, id)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		n.errw.mu.Lock()
		logs := n.stderr.String()
		n.errw.mu.Unlock()
		var access, replica bool
		for _, l := range strings.Split(logs, "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) != nil || m["request_id"] != id || m["trace_id"] != failTrace {
				continue
			}
			access = access || (m["log"] == "access" && m["app"] == "tchain")
			replica = replica || (m["msg"] == "request failed" && strings.HasPrefix(fmt.Sprint(m["instance"]), "tchain.Ingress."))
		}
		if access && replica {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s: access line with trace_id %s %v, the ingress replica process's line %v:\n%s", id, failTrace, access, replica, grepLines(logs, id))
		}
	}
}

// accessLine reports whether logs hold a JSON access log line of a
// successful call to app with traceID and a request id.
func accessLine(logs, app, traceID string) bool {
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["log"] == "access" && m["app"] == app && m["trace_id"] == traceID && m["code"] == "ok" && m["request_id"] != "" && m["request_id"] != nil {
			return true
		}
	}
	return false
}
