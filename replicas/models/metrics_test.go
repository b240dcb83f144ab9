package models

import (
	"strings"

	dto "github.com/prometheus/client_model/go"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsCollect: a scrape reads each reporter's cache counters, and
// a closed reporter leaves the scrape.
func TestMetricsCollect(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	var reps []*Reporter
	for i, name := range []string{"r1", "r2"} {
		c, err := NewCache(Config{Dir: t.TempDir()}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := c.Stats()
		st.Hits.Add(int64(10 * (i + 1)))
		st.Misses.Add(int64(i + 1))
		st.Loads.Add(2)
		st.Evictions.Add(int64(i))
		r := &Reporter{base: Report{App: "a", Deployment: "D", Replica: name}, cache: c}
		m.add(r)
		reps = append(reps, r)
	}
	if got := testutil.ToFloat64(collectorFor(m, "sluice_model_cache_hits_total", "r2")); got != 20 {
		t.Errorf("hits of r2 = %v, want 20", got)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_model_cache_evictions_total"); err != nil || n != 2 {
		t.Errorf("evictions series = %d (%v), want one per replica", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	m.forget(reps[0])
	if n, err := testutil.GatherAndCount(reg, "sluice_model_cache_misses_total"); err != nil || n != 1 {
		t.Errorf("after r1 closed: %d misses series (%v), want 1", n, err)
	}
	var none *Metrics
	none.add(reps[0]) // a Factory without Metrics
	none.forget(reps[0])
}

// collectorFor is the one series name of replica from m, as a collector.
func collectorFor(m *Metrics, name, replica string) prometheus.Collector {
	return collectFunc(func(ch chan<- prometheus.Metric) {
		all := make(chan prometheus.Metric, 64)
		m.Collect(all)
		close(all)
		for x := range all {
			d := x.Desc().String()
			if contains(d, `"`+name+`"`) && metricHas(x, replica) {
				ch <- x
			}
		}
	})
}

type collectFunc func(chan<- prometheus.Metric)

func (f collectFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func metricHas(x prometheus.Metric, value string) bool {
	var pb dto.Metric
	if x.Write(&pb) != nil {
		return false
	}
	for _, l := range pb.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}
