package autoscaler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The Scaler is a prometheus.Collector of its deployments: the size it
// runs and wants, the lag it read, and its decisions by direction
// (counted as it makes them, read when scraped).
var (
	decisionsDesc = prometheus.NewDesc("sluice_autoscaler_decisions_total",
		"Autoscaler decisions, by direction: up, down, hold (the size kept).", []string{"app", "deployment", "direction"}, nil)
	currentDesc = prometheus.NewDesc("sluice_autoscaler_replicas",
		"Replicas the actuator runs for the deployment.", []string{"app", "deployment"}, nil)
	readyDesc = prometheus.NewDesc("sluice_autoscaler_ready_replicas",
		"Replicas consuming (members of the deployment's group).", []string{"app", "deployment"}, nil)
	desiredDesc = prometheus.NewDesc("sluice_autoscaler_desired_replicas",
		"Replicas the latest decision asked for.", []string{"app", "deployment"}, nil)
	lagDesc = prometheus.NewDesc("sluice_autoscaler_lag",
		"Consumer-group lag of the deployment, as the autoscaler last read it (records).", []string{"app", "deployment"}, nil)
)

// directions names the decided counters' indexes.
var directions = [...]string{"up", "down", "hold"}

// count records one decision in l's counters; s.mu is held.
func (l *loop) count(dec *Decision) {
	switch {
	case dec == nil:
	case dec.To > dec.From:
		l.decided[0]++
	case dec.To < dec.From:
		l.decided[1]++
	default:
		l.decided[2]++
	}
}

// Describe implements prometheus.Collector.
func (s *Scaler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{decisionsDesc, currentDesc, readyDesc, desiredDesc, lagDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Scaler) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, l := range s.loops {
		for i, dir := range directions {
			ch <- prometheus.MustNewConstMetric(decisionsDesc, prometheus.CounterValue, float64(l.decided[i]), t.App, t.Deployment, dir)
		}
		st := l.status
		ch <- prometheus.MustNewConstMetric(currentDesc, prometheus.GaugeValue, float64(st.Current), t.App, t.Deployment)
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, float64(st.Ready), t.App, t.Deployment)
		ch <- prometheus.MustNewConstMetric(desiredDesc, prometheus.GaugeValue, float64(st.Last.To), t.App, t.Deployment)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(st.Lag), t.App, t.Deployment)
	}
}
