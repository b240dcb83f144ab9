package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-serve/sluice/streams"
)

// A Python application's replica processes serve /metrics where their
// launcher asks (SLUICE_METRICS_ADDR, port 0: a node's, or `sluice
// dev`'s for the bundles it runs as processes) and report the address
// they bound: `sluice status --json` and the gateway's service discovery
// name them; after N requests through the ingress and its handle call,
// each deployment's scraped counters and histograms add up to N; every
// replica series the Grafana dashboard reads is there (one failure
// counted by its code where it failed), with the
// process's and the interpreter's, and its Kafka clients' bytes under
// kprom's sluice_kgo_* names. On `sluice dev` here; on the
// production topology in TestPythonMetricsNode.
func TestPythonMetricsDev(t *testing.T) {
	needPython(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	testPythonMetrics(t, startDevProcessWith(t, nil, []string{envs}), envs)
}

// TestPythonMetricsDev on `sluice gateway` + `sluice node`, the bundles
// in the real tier's MinIO.
func TestPythonMetricsNode(t *testing.T) {
	needPython(t)
	s3 := nodeS3(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	n := startS3Node(t, s3, "pymetrics-"+streams.Instance(), envs)
	testPythonMetrics(t, platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String}, envs)
}

func testPythonMetrics(t *testing.T, p platformUnderTest, envs string) {
	app := "pm" + streams.Instance()[:6]
	deploy := exec.Command(p.bin, "deploy", "--python", "testdata/pygreet", "--import-path", "greet:app", "--name", app, "--timeout", "4m", "--addr", p.addr)
	deploy.Env = append(os.Environ(), envs)
	if out, err := deploy.CombinedOutput(); err != nil {
		t.Fatalf("deploy --python: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	var scrape map[string][]string
	deadline := time.Now().Add(90 * time.Second)
	for {
		scrape = replicaMetrics(t, p.bin, p.addr, app)
		if len(scrape["Greeter"]) == 1 && len(scrape["Upper"]) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Python replicas with metrics addresses: %v\nlogs:\n%s", scrape, p.logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
	discovered := targets(t, p.addr, app)
	for dep, addrs := range scrape {
		if got := discovered[dep]; !sameSet(got, addrs) {
			t.Errorf("service discovery of %s: %v, want %v (from sluice status)", dep, got, addrs)
		}
	}

	const requests = 25
	for i := range requests {
		if code, body := postTo(t, p.addr, "/"+app, `{"name":"ada"}`); code != 200 || body != `{"greeting":"hello ADA"}` {
			t.Fatalf("request %d: %d %q\nlogs:\n%s", i, code, body, p.logs())
		}
	}
	// One without a name fails in Greeter (KeyError: internal), counted
	// by its code there.
	if code, body := postTo(t, p.addr, "/"+app, `{}`); code != 500 || !strings.Contains(body, "KeyError") {
		t.Fatalf("a request without a name: %d %q", code, body)
	}

	names := map[string]bool{}
	value := func(f map[string]*dto.MetricFamily, name, dep string) float64 {
		var v float64
		for _, m := range f[name].GetMetric() {
			if label(m, "app") != app || label(m, "deployment") != dep || label(m, "replica") == "" {
				continue
			}
			switch {
			case m.Counter != nil:
				v += m.Counter.GetValue()
			case m.Histogram != nil:
				v += float64(m.Histogram.GetSampleCount())
			case m.Gauge != nil:
				v += m.Gauge.GetValue()
			}
		}
		return v
	}
	deadline = time.Now().Add(15 * time.Second)
	for _, dep := range []string{"Greeter", "Upper"} {
		for {
			f := scrapeMetrics(t, scrape[dep][0], names)
			processed := value(f, "sluice_replica_processed_total", dep)
			handled := value(f, "sluice_replica_handler_seconds", dep)
			waited := value(f, "sluice_replica_queue_wait_seconds", dep)
			failed := value(f, "sluice_replica_failed_total", dep)
			internal := 0.0
			for _, m := range f["sluice_replica_errors_total"].GetMetric() {
				if label(m, "app") == app && label(m, "deployment") == dep && label(m, "code") == "internal" {
					internal += m.Counter.GetValue()
				}
			}
			ready := value(f, "sluice_replica_ready", dep)
			wantFailed := map[string]float64{"Greeter": 1}[dep]
			if processed == requests && handled == requests+wantFailed && waited == requests+wantFailed && failed == wantFailed && internal == wantFailed && ready == 1 {
				if f["python_info"] == nil {
					t.Errorf("%s: %s serves no python_info: not the Python replica", dep, scrape[dep][0])
				}
				t.Logf("%s: %v records, scraped from its Python process at %s", dep, processed, scrape[dep][0])
				break
			}
			if processed > requests || time.Now().After(deadline) {
				t.Fatalf("%s: processed %v, handler samples %v, queue-wait samples %v, failed %v (internal %v), ready %v at %v; want %d processed, %v failed",
					dep, processed, handled, waited, failed, internal, ready, scrape[dep], requests, wantFailed)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Its Kafka clients' statistics (every 5 s) under kprom's names: the
	// dashboard's Kafka panel sums them with the Go processes'.
	deadline = time.Now().Add(30 * time.Second)
	for _, dep := range []string{"Greeter", "Upper"} {
		for {
			f := scrapeMetrics(t, scrape[dep][0], names)
			sum := func(name string) float64 {
				var v float64
				for _, m := range f[name].GetMetric() {
					v += m.GetCounter().GetValue()
				}
				return v
			}
			fetched, produced := sum("sluice_kgo_fetch_bytes_total"), sum("sluice_kgo_produce_bytes_total")
			if fetched > 0 && produced > 0 {
				t.Logf("%s: its Kafka clients fetched %v and produced %v bytes", dep, fetched, produced)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sluice_kgo_fetch_bytes_total %v, sluice_kgo_produce_bytes_total %v at %v; want both above 0", dep, fetched, produced, scrape[dep][0])
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	// Every replica and Kafka client series the dashboard reads, the Python replica serves.
	used := dashboardMetrics(t)
	for _, u := range used {
		if (strings.HasPrefix(u, "sluice_replica_") || strings.HasPrefix(u, "sluice_kgo_") || strings.HasPrefix(u, "process_")) && !names[u] {
			t.Errorf("the dashboard reads %s, which the Python replica does not export", u)
		}
	}
}
