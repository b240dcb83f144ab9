package replicas

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// Metrics exports a process's replicas to Prometheus: what each one
// already counts for its Report (read when scraped, nothing added to the
// consume loop) and the few observations only the loop can make (queue
// wait, handler time, failures by code, partition changes, each
// partition's high watermark). Every series carries app, deployment and
// replica (the replica's instance; not "instance", which Prometheus gives
// each target). Register it once; give it to each replica in
// Config.Metrics. A nil *Metrics observes nothing.
type Metrics struct {
	lag                *prometheus.Desc
	queueWait, handler *prometheus.HistogramVec
	errors, rebalances *prometheus.CounterVec

	mu   sync.Mutex
	reps map[*Replica]bool
}

// LatencyBuckets are the bounds, in seconds, of the replicas' histograms.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

var replicaLabels = []string{"app", "deployment", "replica"}

// reportSeries are the counters and gauges read from Report.
var reportSeries = []struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(Report) float64
}{
	{prometheus.NewDesc("sluice_replica_processed_total", "Records processed to an answer or an output.", replicaLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Processed) }},
	{prometheus.NewDesc("sluice_replica_failed_total", "Records answered with an error or dead-lettered.", replicaLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Failed) }},
	{prometheus.NewDesc("sluice_replica_expired_total", "Records whose deadline had passed when picked up.", replicaLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Expired) }},
	{prometheus.NewDesc("sluice_replica_dead_lettered_total", "Records written to the dead-letter topic.", replicaLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.DeadLettered) }},
	{prometheus.NewDesc("sluice_replica_in_flight", "Records picked up and not yet completed.", replicaLabels, nil), prometheus.GaugeValue, func(r Report) float64 { return float64(r.Ongoing) }},
	{prometheus.NewDesc("sluice_replica_partitions", "Partitions the replica owns.", replicaLabels, nil), prometheus.GaugeValue, func(r Report) float64 { return float64(r.Partitions) }},
	{prometheus.NewDesc("sluice_replica_ready", "1 once the replica holds partitions (or joined with none to hold).", replicaLabels, nil), prometheus.GaugeValue, func(r Report) float64 {
		if r.Ready {
			return 1
		}
		return 0
	}},
}

// NewMetrics returns an empty set; register it with a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		lag: prometheus.NewDesc("sluice_replica_fetch_lag",
			"Records in the replica's partitions past the last one it fetched, as of each partition's latest fetch (its share of the group's lag, not counting records fetched and not yet committed).", replicaLabels, nil),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_replica_queue_wait_seconds", Buckets: LatencyBuckets,
			Help: "Time from a record's timestamp (its produce) to its pick-up by a replica.",
		}, replicaLabels),
		handler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_replica_handler_seconds", Buckets: LatencyBuckets,
			Help: "Time the deployment's handler ran on one record.",
		}, replicaLabels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_replica_errors_total", Help: "Records that failed, by error code.",
		}, append(replicaLabels[:3:3], "code")),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_replica_rebalances_total", Help: "Changes of the partitions a replica owns (assigned, revoked, lost).",
		}, replicaLabels),
		reps: map[*Replica]bool{},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range reportSeries {
		ch <- s.desc
	}
	ch <- m.lag
	m.queueWait.Describe(ch)
	m.handler.Describe(ch)
	m.errors.Describe(ch)
	m.rebalances.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	reps := make([]*Replica, 0, len(m.reps))
	for r := range m.reps {
		reps = append(reps, r)
	}
	m.mu.Unlock()
	for _, r := range reps {
		rep := r.Report()
		for _, s := range reportSeries {
			ch <- prometheus.MustNewConstMetric(s.desc, s.typ, s.value(rep), rep.App, rep.Deployment, rep.Instance)
		}
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(r.obs.lag.owned(r)), rep.App, rep.Deployment, rep.Instance)
	}
	m.queueWait.Collect(ch)
	m.handler.Collect(ch)
	m.errors.Collect(ch)
	m.rebalances.Collect(ch)
}

// observers are one replica's handles on the histograms and counters, so
// the consume loop looks no labels up.
type observers struct {
	m                  *Metrics
	labels             []string
	queueWait, handler prometheus.Observer
	rebalances         prometheus.Counter
	lag                *fetchLag
}

// fetchLag is each partition's lag as of its latest fetch: its high
// watermark less the offset after the last record fetched.
type fetchLag struct {
	mu     sync.Mutex
	byPart map[tp]int64
}

// owned sums the lag of the partitions r owns now, and forgets the
// others (revoked since their last fetch).
func (l *fetchLag) owned(r *Replica) int64 {
	r.mu.Lock()
	parts := make(map[tp]bool, len(r.parts))
	for k := range r.parts {
		parts[k] = true
	}
	r.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum int64
	for k, n := range l.byPart {
		if parts[k] {
			sum += n
		} else {
			delete(l.byPart, k)
		}
	}
	return sum
}

// observe starts exporting r; the observers it returns are r's.
func (m *Metrics) observe(r *Replica) observers {
	if m == nil {
		return observers{}
	}
	m.mu.Lock()
	m.reps[r] = true
	m.mu.Unlock()
	l := []string{r.cfg.App, r.cfg.Deployment, r.cfg.Instance}
	return observers{m: m, labels: l, queueWait: m.queueWait.WithLabelValues(l...), handler: m.handler.WithLabelValues(l...),
		rebalances: m.rebalances.WithLabelValues(l...), lag: &fetchLag{byPart: map[tp]int64{}}}
}

// forget stops exporting r (its Run returned): its series leave the scrape.
func (m *Metrics) forget(r *Replica) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.reps, r)
	m.mu.Unlock()
	l := prometheus.Labels{"app": r.cfg.App, "deployment": r.cfg.Deployment, "replica": r.cfg.Instance}
	m.queueWait.DeletePartialMatch(l)
	m.handler.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
	m.rebalances.DeletePartialMatch(l)
}

// pickedUp observes rec's queue wait: from its timestamp (set by its
// producer, or the broker's append time on such topics) to now.
func (o observers) pickedUp(rec *kgo.Record) {
	if o.queueWait != nil {
		o.queueWait.Observe(max(time.Since(rec.Timestamp), 0).Seconds())
	}
}

// fetched records each fetched partition's lag after the fetch.
func (o observers) fetched(fs kgo.Fetches) {
	if o.lag == nil {
		return
	}
	o.lag.mu.Lock()
	defer o.lag.mu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 && p.HighWatermark >= 0 {
			o.lag.byPart[tp{p.Topic, p.Partition}] = max(p.HighWatermark-p.Records[n-1].Offset-1, 0)
		}
	})
}

// handled observes the handler's time since start; deferred around it.
func (o observers) handled(start time.Time) {
	if o.handler != nil {
		o.handler.Observe(time.Since(start).Seconds())
	}
}

// failed counts one record that failed with code.
func (o observers) failed(code streams.Code) {
	if o.m != nil {
		o.m.errors.WithLabelValues(o.labels[0], o.labels[1], o.labels[2], string(code)).Inc()
	}
}

// rebalanced counts one change of the partitions owned.
func (o observers) rebalanced() {
	if o.rebalances != nil {
		o.rebalances.Inc()
	}
}
