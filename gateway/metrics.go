package gateway

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/streams"
)

// latencyBuckets are the histogram bounds in seconds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics are the gateway's counters, exported by its collector. Few
// series, so one mutex; observe is on the request path and takes it
// once.
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

// collector is the gateway's prometheus.Collector: its own counters
// and histograms (kept by observe, read here, so the request path takes
// one mutex and nothing of Prometheus), and each deployment's counters
// and lag from the controller's status view (the replicas' reports on
// the status topic: every replica of every node), read within two
// seconds.
type collector struct{ s *Server }

var (
	requestsDesc = prometheus.NewDesc("sluice_gateway_requests_total", "Requests by application and result code.", []string{"app", "code"}, nil)
	latencyDesc  = prometheus.NewDesc("sluice_gateway_request_seconds", "Time from request to reply.", []string{"app"}, nil)
	inFlightDesc = prometheus.NewDesc("sluice_gateway_in_flight", "Requests waiting for a reply.", nil, nil)
	kafkaErrDesc = prometheus.NewDesc("sluice_kafka_errors_total", "Failed Kafka produces of requests and fetches of replies.", []string{"op"}, nil)
	deniedDesc   = prometheus.NewDesc("sluice_gateway_auth_denied_total", "Calls refused by authentication (missing, invalid) or authorisation (scope).", []string{"reason"}, nil)
	droppedDesc  = prometheus.NewDesc("sluice_replies_dropped_total", "Replies that matched no waiter (duplicates, or late).", nil, nil)
)

// deploymentSeries are the per-deployment series, from DeploymentStatus.
var deploymentSeries = []struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(d controller.DeploymentStatus) float64
}{
	{prometheus.NewDesc("sluice_deployment_replicas", "Live replicas of the deployment, from their reports on the status topic.", []string{"app", "deployment"}, nil), prometheus.GaugeValue, func(d controller.DeploymentStatus) float64 { return float64(d.Replicas) }},
	{prometheus.NewDesc("sluice_deployment_processed_total", "Records processed by the deployment's live replicas.", []string{"app", "deployment"}, nil), prometheus.CounterValue, func(d controller.DeploymentStatus) float64 { return float64(d.Processed) }},
	{prometheus.NewDesc("sluice_deployment_failed_total", "Records that failed at the deployment's live replicas.", []string{"app", "deployment"}, nil), prometheus.CounterValue, func(d controller.DeploymentStatus) float64 { return float64(d.Failed) }},
	{prometheus.NewDesc("sluice_deployment_mirrored_total", "Answers of mirrored copies (shadow traffic) dropped at the deployment's live replicas.", []string{"app", "deployment"}, nil), prometheus.CounterValue, func(d controller.DeploymentStatus) float64 { return float64(d.Mirrored) }},
	{prometheus.NewDesc("sluice_deployment_joins_fired_total", "Joins emitted by the deployment's live replicas.", []string{"app", "deployment"}, nil), prometheus.CounterValue, func(d controller.DeploymentStatus) float64 { return float64(d.JoinsFired) }},
	{prometheus.NewDesc("sluice_deployment_joins_timed_out_total", "Joins whose window ended before every input came.", []string{"app", "deployment"}, nil), prometheus.CounterValue, func(d controller.DeploymentStatus) float64 { return float64(d.JoinsTimedOut) }},
	{prometheus.NewDesc("sluice_deployment_join_late_total", "Join inputs dropped: after their join fired, or again from the same upstream.", []string{"app", "deployment"}, nil), prometheus.CounterValue, func(d controller.DeploymentStatus) float64 { return float64(d.JoinLate) }},
	{prometheus.NewDesc("sluice_deployment_ongoing", "Records in flight at the deployment's replicas.", []string{"app", "deployment"}, nil), prometheus.GaugeValue, func(d controller.DeploymentStatus) float64 { return float64(d.Ongoing) }},
	{prometheus.NewDesc("sluice_deployment_lag", "Consumer-group lag (NaN when unreadable).", []string{"app", "deployment"}, nil), prometheus.GaugeValue, func(d controller.DeploymentStatus) float64 {
		if d.Lag < 0 {
			return math.NaN()
		}
		return float64(d.Lag)
	}},
}

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{requestsDesc, latencyDesc, inFlightDesc, kafkaErrDesc, deniedDesc, droppedDesc} {
		ch <- d
	}
	for _, s := range deploymentSeries {
		ch <- s.desc
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.metrics.collect(ch)
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(s.inFlight.Load()))
	prod, fetch := s.cfg.Caller.Errors()
	ch <- prometheus.MustNewConstMetric(kafkaErrDesc, prometheus.CounterValue, float64(prod), "produce")
	ch <- prometheus.MustNewConstMetric(kafkaErrDesc, prometheus.CounterValue, float64(fetch), "fetch")
	for reason, n := range map[string]uint64{deniedMissing: s.denied.missing.Load(), deniedInvalid: s.denied.invalid.Load(), deniedScope: s.denied.scope.Load()} {
		ch <- prometheus.MustNewConstMetric(deniedDesc, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.cfg.Caller.Dropped()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, a := range s.cfg.Control.Apps(ctx) {
		for _, d := range a.Deployments {
			for _, sr := range deploymentSeries {
				ch <- prometheus.MustNewConstMetric(sr.desc, sr.typ, sr.value(d), a.Name, d.Name)
			}
		}
	}
}

// collect sends the requests and latency series.
func (m *metrics) collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, n := range m.requests {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), k.app, codeLabel(k.code))
	}
	for app, h := range m.latency {
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			buckets[le] = cum
		}
		ch <- prometheus.MustNewConstHistogram(latencyDesc, h.n, h.sum, buckets, app)
	}
}

func codeLabel(c streams.Code) string {
	if c == streams.CodeOK {
		return "ok"
	}
	return string(c)
}

// sdGroup is one target group of Prometheus's HTTP service discovery.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// targets answers Prometheus's HTTP service discovery (http_sd_configs)
// with every live replica that serves /metrics of its own: the address
// its report on the status topic names, labelled with its app,
// deployment and replica (scrape with honor_labels, so that the
// replica's own labels win where both are set).
func (s *Server) targets(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	out := []sdGroup{}
	for _, a := range s.cfg.Control.Apps(ctx) {
		for _, d := range a.Deployments {
			for _, rep := range d.Reports {
				if rep.Metrics != "" {
					out = append(out, sdGroup{Targets: []string{rep.Metrics}, Labels: map[string]string{"app": a.Name, "deployment": d.Name, "replica": rep.Instance}})
				}
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
