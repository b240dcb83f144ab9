package replicas

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// TestMetricsCollect runs a replica with Metrics and checks what a scrape
// reads: the Report's counters, queue wait and handler time per record,
// failures by code, partition changes; and that the replica's series
// leave once it stops.
func TestMetricsCollect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	cfg := f.config()
	cfg.App, cfg.Instance, cfg.Metrics = "app", "i1", m
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		if string(in.Value) == "bad" {
			return streams.Errorf(streams.CodeInvalidArgument, "bad input")
		}
		time.Sleep(20 * time.Millisecond)
		return out.Emit(in.Value, "")
	}))
	old := time.Now().Add(-2 * time.Second) // queued two seconds ago
	produce(t,
		&kgo.Record{Topic: f.in, Value: []byte("a"), Timestamp: old, Headers: hdrs(protocol.HeaderID, "a", protocol.HeaderReplyTo, f.reply)},
		&kgo.Record{Topic: f.in, Value: []byte("b"), Timestamp: old, Headers: hdrs(protocol.HeaderID, "b", protocol.HeaderReplyTo, f.reply)},
		&kgo.Record{Topic: f.in, Value: []byte("bad"), Timestamp: old, Headers: hdrs(protocol.HeaderID, "c", protocol.HeaderReplyTo, f.reply)},
	)
	consume(t, f.reply, 3, 10*time.Second)
	waitFor(t, 5*time.Second, "three records completed", func() bool { st := rep.Stats(); return st.Processed+st.Failed == 3 })

	got := gather(t, reg)
	labels := map[string]string{"app": "app", "deployment": "dep", "replica": "i1"}
	for name, want := range map[string]float64{
		"sluice_replica_processed_total": 2,
		"sluice_replica_failed_total":    1,
		"sluice_replica_partitions":      2,
		"sluice_replica_ready":           1,
		"sluice_replica_in_flight":       0,
	} {
		if v, ok := value(got, name, labels); !ok || v != want {
			t.Errorf("%s = %v (found %v), want %v", name, v, ok, want)
		}
	}
	errLabels := map[string]string{"app": "app", "deployment": "dep", "replica": "i1", "code": string(streams.CodeInvalidArgument)}
	if v, ok := value(got, "sluice_replica_errors_total", errLabels); !ok || v != 1 {
		t.Errorf("errors_total{code=invalid_argument} = %v (found %v), want 1", v, ok)
	}
	if v, ok := value(got, "sluice_replica_rebalances_total", labels); !ok || v < 1 {
		t.Errorf("rebalances_total = %v (found %v), want at least the first assignment", v, ok)
	}
	qw := histogram(got, "sluice_replica_queue_wait_seconds", labels)
	if qw == nil || qw.GetSampleCount() != 3 || qw.GetSampleSum() < 3*1.9 {
		t.Errorf("queue wait = %v, want 3 samples of about 2s each", qw)
	}
	ht := histogram(got, "sluice_replica_handler_seconds", labels)
	if ht == nil || ht.GetSampleCount() != 3 || ht.GetSampleSum() < 2*0.02 || ht.GetSampleSum() > 1.9 {
		t.Errorf("handler time = %v, want 3 samples, two of 20ms (and not the queue wait)", ht)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	rep.stop(t)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("after the replica stopped: %d series (%v), want none", n, err)
	}
}

// TestMetricsNil: a replica without Metrics observes nothing and runs.
func TestMetricsNil(t *testing.T) {
	t.Parallel()
	var o observers
	o.pickedUp(&kgo.Record{Timestamp: time.Now()})
	o.handled(time.Now())
	o.failed(streams.CodeInternal)
	o.rebalanced()
	var m *Metrics
	m.forget(nil)
	if got := m.observe(nil); got.m != nil {
		t.Error("a nil Metrics returned observers")
	}
}

func gather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

func find(mfs []*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func value(mfs []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	m := find(mfs, name, labels)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

func histogram(mfs []*dto.MetricFamily, name string, labels map[string]string) *dto.Histogram {
	if m := find(mfs, name, labels); m != nil {
		return m.GetHistogram()
	}
	return nil
}

// BenchmarkObservers is what the consume loop pays per record for the
// metrics (queue wait, handler time), against the loop's own bookkeeping
// of a record (an atomic add, as Stats counts) in the same run.
//
//	go test ./replicas -run '^$' -bench Observers
func BenchmarkObservers(b *testing.B) {
	m := NewMetrics()
	o := m.observe(&Replica{cfg: Config{App: "a", Deployment: "d", Instance: "i"}})
	rec := &kgo.Record{Timestamp: time.Now()}
	var base time.Duration
	b.Run("baseline", func(b *testing.B) {
		var r Replica
		start := time.Now()
		for range b.N {
			r.stats.processed.Add(1)
		}
		base = time.Since(start) / time.Duration(max(b.N, 1))
	})
	b.Run("observed", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			o.pickedUp(rec)
			o.handled(start)
		}
		per := time.Since(start) / time.Duration(max(b.N, 1))
		if base > 0 {
			b.ReportMetric(float64(per)/float64(base), "x_baseline")
		}
	})
}

// A replica's fetch lag is what its partitions hold past the last record
// it fetched: with one record in flight at a time and four more behind
// it, four; none once it has read them all.
func TestMetricsFetchLag(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	cfg := f.config()
	cfg.App, cfg.Instance, cfg.Metrics, cfg.MaxOngoing = "app", "i1", m, 1
	release := make(chan struct{})
	started := make(chan struct{}, 5)
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		started <- struct{}{}
		<-release
		return out.Emit(in.Value, "")
	}))
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: f.in, Value: []byte{byte('a' + i)}})
	}
	produce(t, recs...)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no record picked up")
	}
	labels := map[string]string{"app": "app", "deployment": "dep", "replica": "i1"}
	if v, ok := value(gather(t, reg), "sluice_replica_fetch_lag", labels); !ok || v != 4 {
		t.Errorf("fetch lag with the first of 5 records in flight = %v (found %v), want 4", v, ok)
	}
	close(release)
	waitFor(t, 10*time.Second, "five records processed", func() bool { return rep.Stats().Processed == 5 })
	if v, ok := value(gather(t, reg), "sluice_replica_fetch_lag", labels); !ok || v != 0 {
		t.Errorf("fetch lag after all = %v (found %v), want 0", v, ok)
	}
}

// TestMetricsNewFails: a replica whose New fails (no broker answers) is
// never Run, so New itself takes it out of Metrics: no series of a
// replica that does not exist stay behind.
func TestMetricsNewFails(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cfg := Config{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{"in"}, Output: "out", DeadLetter: "dlq",
		App: "app", Deployment: "dep", Instance: "i1", Metrics: m}
	if _, err := New(ctx, cfg, handlerFunc(func(context.Context, *Input, Output) error { return nil })); err == nil {
		t.Fatal("New with no broker: no error")
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("after New failed: %d series (%v), want none", n, err)
	}
}
