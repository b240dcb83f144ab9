package gateway

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/streams"
)

// latencyBuckets are the histogram bounds in seconds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics are the gateway's counters, written in the Prometheus text
// format. Few series, so one mutex; observe is on the request path and
// takes it once.
type metrics struct {
	mu       sync.Mutex
	requests map[appCode]uint64
	latency  map[string]*histogram
	stats    map[modelVersion]*inferStats // the OIP's statistics extension
}

type modelVersion struct{ model, version string }

// inferStats are a model version's calls through this gateway: count and
// total time of successes and failures, and the last call's time.
type inferStats struct {
	success, fail struct{ count, ns uint64 }
	last          time.Time
}

type appCode struct {
	app  string
	code streams.Code
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{requests: map[appCode]uint64{}, latency: map[string]*histogram{}, stats: map[modelVersion]*inferStats{}}
}

// observe counts one call to app (an application or a model; "" when the
// name was unknown) that ended with code after d.
func (m *metrics) observe(app string, code streams.Code, d time.Duration) {
	secs := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, secs)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[appCode{app, code}]++
	h := m.latency[app]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets)+1)}
		m.latency[app] = h
	}
	h.counts[i]++
	h.sum += secs
	h.n++
}

// inferred counts one OIP inference of model at version, for the OIP's
// statistics.
func (m *metrics) inferred(model, version string, code streams.Code, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := modelVersion{model, version}
	st := m.stats[k]
	if st == nil {
		st = new(inferStats)
		m.stats[k] = st
	}
	sd := &st.success
	if code != streams.CodeOK {
		sd = &st.fail
	}
	sd.count++
	sd.ns += uint64(max(d, 0))
	st.last = time.Now()
}

// modelStats returns a copy of the statistics of every version of model
// this gateway has called.
func (m *metrics) modelStats(model string) map[string]inferStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]inferStats{}
	for k, st := range m.stats {
		if k.model == model {
			out[k.version] = *st
		}
	}
	return out
}

// serve writes the gateway's series and the deployments' counters and lag
// (read from the controller, bounded by two seconds).
func (m *metrics) serve(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.write(w)
		fmt.Fprintf(w, "# HELP sluice_gateway_in_flight Requests waiting for a reply.\n# TYPE sluice_gateway_in_flight gauge\nsluice_gateway_in_flight %d\n", s.inFlight.Load())
		prod, fetch := s.cfg.Caller.Errors()
		fmt.Fprintf(w, "# HELP sluice_kafka_errors_total Failed Kafka produces of requests and fetches of replies.\n# TYPE sluice_kafka_errors_total counter\n")
		fmt.Fprintf(w, "sluice_kafka_errors_total{op=\"produce\"} %d\nsluice_kafka_errors_total{op=\"fetch\"} %d\n", prod, fetch)
		fmt.Fprint(w, "# HELP sluice_gateway_auth_denied_total Calls refused by authentication (missing, invalid) or authorisation (scope).\n# TYPE sluice_gateway_auth_denied_total counter\n")
		fmt.Fprintf(w, "sluice_gateway_auth_denied_total{reason=%q} %d\nsluice_gateway_auth_denied_total{reason=%q} %d\nsluice_gateway_auth_denied_total{reason=%q} %d\n",
			deniedMissing, s.denied.missing.Load(), deniedInvalid, s.denied.invalid.Load(), deniedScope, s.denied.scope.Load())
		fmt.Fprintf(w, "# HELP sluice_replies_dropped_total Replies that matched no waiter (duplicates, or late).\n# TYPE sluice_replies_dropped_total counter\nsluice_replies_dropped_total %d\n", s.cfg.Caller.Dropped())
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		writeDeployments(w, s.cfg.Control.Apps(ctx))
	}
}

func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprint(w, "# HELP sluice_gateway_requests_total Requests by application and result code.\n# TYPE sluice_gateway_requests_total counter\n")
	keys := make([]appCode, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b appCode) int {
		return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.code, b.code))
	})
	for _, k := range keys {
		fmt.Fprintf(w, "sluice_gateway_requests_total{app=%q,code=%q} %d\n", k.app, codeLabel(k.code), m.requests[k])
	}
	fmt.Fprint(w, "# HELP sluice_gateway_request_seconds Time from request to reply.\n# TYPE sluice_gateway_request_seconds histogram\n")
	apps := make([]string, 0, len(m.latency))
	for a := range m.latency {
		apps = append(apps, a)
	}
	slices.Sort(apps)
	for _, a := range apps {
		h := m.latency[a]
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(w, "sluice_gateway_request_seconds_bucket{app=%q,le=\"%g\"} %d\n", a, le, cum)
		}
		fmt.Fprintf(w, "sluice_gateway_request_seconds_bucket{app=%q,le=\"+Inf\"} %d\n", a, h.n)
		fmt.Fprintf(w, "sluice_gateway_request_seconds_sum{app=%q} %g\nsluice_gateway_request_seconds_count{app=%q} %d\n", a, h.sum, a, h.n)
	}
}

func writeDeployments(w io.Writer, apps []controller.AppStatus) {
	series := []struct {
		name, help, typ string
		value           func(d controller.DeploymentStatus) float64
	}{
		{"sluice_deployment_replicas", "Replicas running in this process.", "gauge", func(d controller.DeploymentStatus) float64 { return float64(d.Replicas) }},
		{"sluice_deployment_processed_total", "Records processed.", "counter", func(d controller.DeploymentStatus) float64 { return float64(d.Processed) }},
		{"sluice_deployment_failed_total", "Records that failed.", "counter", func(d controller.DeploymentStatus) float64 { return float64(d.Failed) }},
		{"sluice_deployment_mirrored_total", "Answers of mirrored copies (shadow traffic) dropped.", "counter", func(d controller.DeploymentStatus) float64 { return float64(d.Mirrored) }},
		{"sluice_deployment_joins_fired_total", "Joins emitted.", "counter", func(d controller.DeploymentStatus) float64 { return float64(d.JoinsFired) }},
		{"sluice_deployment_joins_timed_out_total", "Joins whose window ended before every input came.", "counter", func(d controller.DeploymentStatus) float64 { return float64(d.JoinsTimedOut) }},
		{"sluice_deployment_join_late_total", "Join inputs dropped: after their join fired, or again from the same upstream.", "counter", func(d controller.DeploymentStatus) float64 { return float64(d.JoinLate) }},
		{"sluice_deployment_ongoing", "Records in flight.", "gauge", func(d controller.DeploymentStatus) float64 { return float64(d.Ongoing) }},
		{"sluice_deployment_lag", "Consumer-group lag (NaN when unreadable).", "gauge", func(d controller.DeploymentStatus) float64 {
			if d.Lag < 0 {
				return math.NaN()
			}
			return float64(d.Lag)
		}},
	}
	for _, s := range series {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", s.name, s.help, s.name, s.typ)
		for _, a := range apps {
			for _, d := range a.Deployments {
				fmt.Fprintf(w, "%s{app=%q,deployment=%q} %g\n", s.name, a.Name, d.Name, s.value(d))
			}
		}
	}
}

func codeLabel(c streams.Code) string {
	if c == streams.CodeOK {
		return "ok"
	}
	return string(c)
}
