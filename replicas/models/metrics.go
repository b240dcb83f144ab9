package models

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the model caches of a process's replicas to Prometheus,
// read from their reports when scraped (the cache's own counters):
// hits, misses, loads, evictions, failures, the memory of what is loaded
// and how many versions are. Series carry app, deployment and replica.
// Give it to the Factory; a nil *Metrics exports nothing.
type Metrics struct {
	mu   sync.Mutex
	reps map[*Reporter]bool
}

var cacheLabels = []string{"app", "deployment", "replica"}

var cacheSeries = []struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(Report) float64
}{
	{prometheus.NewDesc("sluice_model_cache_hits_total", "Requests whose model version was loaded.", cacheLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Hits) }},
	{prometheus.NewDesc("sluice_model_cache_misses_total", "Requests whose model version was not loaded.", cacheLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Misses) }},
	{prometheus.NewDesc("sluice_model_cache_loads_total", "Model versions loaded.", cacheLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Loads) }},
	{prometheus.NewDesc("sluice_model_cache_evictions_total", "Model versions evicted to make room.", cacheLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Evictions) }},
	{prometheus.NewDesc("sluice_model_cache_failures_total", "Model versions that failed to load.", cacheLabels, nil), prometheus.CounterValue, func(r Report) float64 { return float64(r.Failures) }},
	{prometheus.NewDesc("sluice_model_cache_memory_bytes", "Memory of the model versions loaded.", cacheLabels, nil), prometheus.GaugeValue, func(r Report) float64 { return float64(r.MemoryBytes) }},
	{prometheus.NewDesc("sluice_model_cache_loaded", "Model versions loaded.", cacheLabels, nil), prometheus.GaugeValue, func(r Report) float64 { return float64(len(r.Loaded)) }},
}

// NewMetrics returns an empty set; register it with a registry.
func NewMetrics() *Metrics { return &Metrics{reps: map[*Reporter]bool{}} }

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range cacheSeries {
		ch <- s.desc
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	reps := make([]*Reporter, 0, len(m.reps))
	for r := range m.reps {
		reps = append(reps, r)
	}
	m.mu.Unlock()
	for _, r := range reps {
		rep := r.Snapshot()
		for _, s := range cacheSeries {
			ch <- prometheus.MustNewConstMetric(s.desc, s.typ, s.value(rep), rep.App, rep.Deployment, rep.Replica)
		}
	}
}

// add exports r's cache (r is started).
func (m *Metrics) add(r *Reporter) {
	if m == nil {
		return
	}
	r.metrics = m
	m.mu.Lock()
	m.reps[r] = true
	m.mu.Unlock()
}

// forget stops exporting r.
func (m *Metrics) forget(r *Reporter) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.reps, r)
	m.mu.Unlock()
}
