package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// The gateway's collector on an embedded broker: its own series under
// the names the hand-written exposition had, each deployment's series
// from the replicas' reports, and /metrics/targets listing the replicas
// that serve /metrics of their own.
func TestMetricsCollector(t *testing.T) {
	t.Parallel()
	ctx, namer, store, caller, log := statusPlatform(t, "mt", "name: a\nroute_prefix: /a\ningress: D\ndeployments:\n  - {name: D, handler: H}\n")
	reports := replicas.NewReports()
	for i, addr := range []string{"10.0.0.1:4000", ""} { // one replica serves metrics, one does not
		b, _ := json.Marshal(replicas.Report{App: "a", Deployment: "D", Instance: string(rune('p' + i)), Ready: true, Processed: 5, Metrics: addr, At: time.Now()})
		reports.Apply(ctx, &kgo.Record{Key: []byte(replicas.ReportKey("a", "D", string(rune('p'+i)))), Value: b})
	}
	reg := prometheus.NewPedanticRegistry()
	s := New(Config{Caller: caller, Namer: namer, Control: controller.NewStatus(controller.StatusConfig{Namer: namer, Store: store, Replicas: reports, Log: log}), Log: log, Metrics: reg})
	s.metrics.observe("a", streams.CodeOK, 3*time.Millisecond)
	s.metrics.observe("a", streams.CodeOK, 2*time.Second)
	s.metrics.observe("a", streams.CodeInvalidArgument, time.Millisecond)
	s.denied.missing.Add(2)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string, labels ...string) *dto.Metric {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				for i := 0; i+1 < len(labels); i += 2 {
					found := false
					for _, l := range m.GetLabel() {
						found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
					}
					if !found {
						continue next
					}
				}
				return m
			}
		}
		t.Errorf("no %s%v", name, labels)
		return &dto.Metric{}
	}
	if v := get("sluice_gateway_requests_total", "app", "a", "code", "ok").GetCounter().GetValue(); v != 2 {
		t.Errorf("requests ok = %v, want 2", v)
	}
	if v := get("sluice_gateway_requests_total", "app", "a", "code", "invalid_argument").GetCounter().GetValue(); v != 1 {
		t.Errorf("requests invalid_argument = %v, want 1", v)
	}
	h := get("sluice_gateway_request_seconds", "app", "a").GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() < 2 {
		t.Errorf("latency histogram %v", h)
	}
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 0.005 && b.GetCumulativeCount() != 2 {
			t.Errorf("le=0.005 holds %d, want 2 (cumulative)", b.GetCumulativeCount())
		}
	}
	if v := get("sluice_gateway_auth_denied_total", "reason", deniedMissing).GetCounter().GetValue(); v != 2 {
		t.Errorf("denied missing = %v, want 2", v)
	}
	if v := get("sluice_deployment_processed_total", "app", "a", "deployment", "D").GetCounter().GetValue(); v != 10 {
		t.Errorf("deployment processed = %v, want 10 (two replicas' reports)", v)
	}
	if v := get("sluice_deployment_replicas", "app", "a", "deployment", "D").GetGauge().GetValue(); v != 2 {
		t.Errorf("deployment replicas = %v, want 2", v)
	}
	if v := get("sluice_deployment_lag", "app", "a", "deployment", "D").GetGauge().GetValue(); !math.IsNaN(v) && v != 0 {
		t.Errorf("deployment lag = %v, want 0 or NaN (no group yet)", v)
	}
	for _, name := range []string{"sluice_gateway_in_flight", "sluice_kafka_errors_total", "sluice_replies_dropped_total"} {
		get(name)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	rec := httptest.NewRecorder()
	s.targets(rec, httptest.NewRequest(http.MethodGet, "/metrics/targets", nil))
	var groups []sdGroup
	if err := json.Unmarshal(rec.Body.Bytes(), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Targets) != 1 || groups[0].Targets[0] != "10.0.0.1:4000" ||
		groups[0].Labels["app"] != "a" || groups[0].Labels["deployment"] != "D" || groups[0].Labels["replica"] != "p" {
		t.Errorf("targets %s, want the one replica that serves metrics", rec.Body.Bytes())
	}
}

// statusPlatform is what a gateway's status side reads, on an embedded
// broker: an app store running with yaml deployed, and a caller; the
// context ends with the test (30 s at most).
func statusPlatform(t *testing.T, prefix, yaml string) (context.Context, streams.Namer, *appstore.Store, *streams.Caller, *slog.Logger) {
	t.Helper()
	emb, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	namer, _ := streams.NewNamer(prefix)
	store, err := appstore.Open(ctx, appstore.Config{Brokers: emb.Brokers(), Namer: namer, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); store.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })
	apps, err := spec.Parse("a.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Deploy(ctx, apps...); err != nil {
		t.Fatal(err)
	}
	caller, err := streams.NewCaller(ctx, emb.Brokers(), namer, "gw-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close(context.Background()) })
	return ctx, namer, store, caller, log
}
