package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-serve/sluice/deploy/grafana"
	"github.com/sluice-serve/sluice/replicas/models"
)

// meteredYAML is a two-deployment dataflow graph ((x + 10) * 3) with two
// replicas of each deployment over four partitions.
const meteredYAML = `name: metered
route_prefix: /metered
ingress: Add10
partitions: 4
deployments:
  - {name: Add10, handler: Adder, args: [10], replicas: {min: 2, initial: 2, max: 2}}
  - {name: Times3, handler: Multiplier, args: [3], replicas: {min: 2, initial: 2, max: 2}}
edges:
  - {from: Add10, to: Times3}
`

// On the production topology (`sluice node` + `sluice gateway`, replicas
// as processes), every replica process serves /metrics at the address
// its report names in `sluice status --json` (and the gateway's
// Prometheus service discovery, /metrics/targets); after N requests the
// request counters of a deployment's replicas, scraped one by one, add
// up to N, and so do their handler-time and queue-wait histograms; one
// bad request is counted by its code where it failed; the gateway
// counts N, and its per-deployment series count N over both replica
// processes. After kill -9 of a replica process, its restarted process is
// a scrape target in its place (the old address gone). Every metric the Grafana dashboard reads is in
// these scrapes (the model cache's, with no model deployment here, are
// checked against what the model metrics describe).
func TestMetricsAddUp(t *testing.T) {
	t.Parallel()
	nodeMetrics := freeAddr(t)
	n := startNode(t, "--metrics-addr", nodeMetrics)
	spec := writeFile(t, "metered.yaml", meteredYAML)
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	// Every replica is ready and reports where it serves its metrics.
	var scrape map[string][]string // deployment → metrics addresses
	deadline := time.Now().Add(90 * time.Second)
	for {
		scrape = replicaMetrics(t, n.bin, n.addr, "metered")
		if len(scrape["Add10"]) == 2 && len(scrape["Times3"]) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas with metrics addresses: %v\nnode stderr:\n%s", scrape, n.stderr.String())
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The gateway's service discovery names the same addresses.
	discovered := targets(t, n.addr, "metered")
	for dep, addrs := range scrape {
		if got := discovered[dep]; !sameSet(got, addrs) {
			t.Errorf("service discovery of %s: %v, want %v (from sluice status)", dep, got, addrs)
		}
	}

	const requests = 60
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for w := range 6 {
		wg.Go(func() {
			for i := w; i < requests; i += 6 {
				resp, err := http.Post("http://"+n.addr+"/metered", "application/json", strings.NewReader(fmt.Sprint(i)))
				if err != nil {
					errs <- err
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprint((i + 10) * 3); resp.StatusCode != 200 || string(b) != want {
					errs <- fmt.Errorf("request %d: %d %q, want %s", i, resp.StatusCode, b, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// One bad request fails at the first deployment, counted by its code.
	resp, err := http.Post("http://"+n.addr+"/metered", "application/json", strings.NewReader(`"not a number"`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad request: %d, want 400", resp.StatusCode)
	}

	// A replica counts a record once its handler returned, which may be
	// just after its answer reached the caller: the sums get there soon.
	names := map[string]bool{}
	sum := func(fams []map[string]*dto.MetricFamily, name, dep string) float64 {
		var v float64
		for _, f := range fams {
			for _, m := range f[name].GetMetric() {
				if label(m, "app") != "metered" || label(m, "deployment") != dep {
					continue
				}
				switch {
				case m.Counter != nil:
					v += m.Counter.GetValue()
				case m.Histogram != nil:
					v += float64(m.Histogram.GetSampleCount())
				}
			}
		}
		return v
	}
	deadline = time.Now().Add(15 * time.Second)
	for _, dep := range []string{"Add10", "Times3"} {
		for {
			var fams []map[string]*dto.MetricFamily
			for _, addr := range scrape[dep] {
				fams = append(fams, scrapeMetrics(t, addr, names))
			}
			processed := sum(fams, "sluice_replica_processed_total", dep)
			handled := sum(fams, "sluice_replica_handler_seconds", dep)
			waited := sum(fams, "sluice_replica_queue_wait_seconds", dep)
			failed := sum(fams, "sluice_replica_errors_total", dep)
			wantFailed := map[string]float64{"Add10": 1}[dep]
			if processed == requests && failed == wantFailed && handled == requests+wantFailed && waited == requests+wantFailed {
				t.Logf("%s: %v records over %d replicas, each scraped from its own process", dep, processed, len(fams))
				break
			}
			if processed > requests || time.Now().After(deadline) {
				t.Fatalf("%s: processed %v, failed %v, handler samples %v, queue-wait samples %v over %v; want %d processed, %v failed", dep, processed, failed, handled, waited, scrape[dep], requests, wantFailed)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	gw := scrapeMetrics(t, n.addr, names)
	var ok float64
	for _, m := range gw["sluice_gateway_requests_total"].GetMetric() {
		if label(m, "app") == "metered" && label(m, "code") == "ok" {
			ok = m.Counter.GetValue()
		}
	}
	if ok != requests {
		t.Errorf("gateway: %v requests ok, want %d", ok, requests)
	}
	// The gateway's per-deployment series count every replica process
	// of the deployment (their reports on the status topic, renewed every
	// few seconds), not only its own process's.
	for _, dep := range []string{"Add10", "Times3"} {
		for {
			var processed, replicas float64
			for _, m := range scrapeMetrics(t, n.addr, names)["sluice_deployment_processed_total"].GetMetric() {
				if label(m, "app") == "metered" && label(m, "deployment") == dep {
					processed = m.Counter.GetValue()
				}
			}
			for _, m := range scrapeMetrics(t, n.addr, names)["sluice_deployment_replicas"].GetMetric() {
				if label(m, "app") == "metered" && label(m, "deployment") == dep {
					replicas = m.Gauge.GetValue()
				}
			}
			if processed == requests && replicas == 2 {
				break
			}
			if time.Now().After(deadline.Add(15 * time.Second)) {
				t.Fatalf("gateway: %s processed %v by %v replicas, want %d by 2", dep, processed, replicas, requests)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	scrapeMetrics(t, nodeMetrics, names) // the autoscaler's series

	// kill -9 of a replica process: the node restarts it in its slot, the
	// new process binds another port and its report replaces the old one,
	// so the service discovery follows it.
	victims := childPIDs(t, n.node.Process.Pid, "Add10")
	if len(victims) != 2 {
		t.Fatalf("replica processes of Add10: %v, want 2", victims)
	}
	killed := time.Now()
	if err := syscall.Kill(victims[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		got := targets(t, n.addr, "metered")["Add10"]
		kept := 0
		for _, a := range got {
			if slices.Contains(scrape["Add10"], a) {
				kept++
			}
		}
		if len(got) == 2 && kept == 1 && scrapes(got[0]) && scrapes(got[1]) {
			t.Logf("after kill -9 of a replica, its restarted process was a scrape target again in %v", time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Since(killed) > time.Minute {
			t.Fatalf("after kill -9: targets %v (before %v)", got, scrape["Add10"])
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The dashboard reads nothing the processes do not export.
	used := dashboardMetrics(t)
	described := map[string]bool{}
	descs := make(chan *prometheus.Desc, 64)
	models.NewMetrics().Describe(descs)
	close(descs)
	for d := range descs {
		described[descName(d)] = true
	}
	for _, u := range used {
		if !names[u] && !(strings.HasPrefix(u, "sluice_model_cache_") && described[u]) {
			t.Errorf("the dashboard reads %s, which no process exports", u)
		}
	}
	n.stop(t)
}

// replicaMetrics reads `sluice status --json` for app: the metrics
// address of each ready replica, by deployment.
func replicaMetrics(t *testing.T, bin, addr, app string) map[string][]string {
	t.Helper()
	b, err := exec.Command(bin, "status", "--json", "--addr", addr, app).Output()
	if err != nil {
		return nil
	}
	var st struct {
		Applications []struct {
			Deployments []struct {
				Name    string `json:"name"`
				Reports []struct {
					Ready   bool   `json:"ready"`
					Metrics string `json:"metrics"`
				} `json:"replica_reports"`
			} `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(b, &st); err != nil || len(st.Applications) != 1 {
		t.Fatalf("status: %v\n%s", err, b)
	}
	out := map[string][]string{}
	for _, d := range st.Applications[0].Deployments {
		for _, r := range d.Reports {
			if r.Ready && r.Metrics != "" {
				out[d.Name] = append(out[d.Name], r.Metrics)
			}
		}
	}
	return out
}

// scrapeMetrics reads addr's /metrics and adds the names of its series
// to names (a histogram's with their suffixes).
func scrapeMetrics(t *testing.T, addr string, names map[string]bool) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	for name, f := range fams {
		names[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// descName is the metric name of a descriptor.
func descName(d *prometheus.Desc) string {
	s := d.String()
	i := strings.Index(s, `fqName: "`)
	if i < 0 {
		return ""
	}
	s = s[i+len(`fqName: "`):]
	return s[:strings.IndexByte(s, '"')]
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(x string) bool { return !slices.Contains(b, x) })
}

// targets reads the gateway's Prometheus service discovery: app's
// replica addresses by deployment.
func targets(t *testing.T, gateway, app string) map[string][]string {
	t.Helper()
	resp, err := http.Get("http://" + gateway + "/metrics/targets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&groups); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, g := range groups {
		if g.Labels["app"] == app && len(g.Targets) == 1 && g.Labels["replica"] != "" {
			out[g.Labels["deployment"]] = append(out[g.Labels["deployment"]], g.Targets[0])
		}
	}
	return out
}

// scrapes reports whether addr answers /metrics.
func scrapes(addr string) bool {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// childPIDs are the processes whose parent is parent and whose command
// line has the argument arg (Linux: /proc).
func childPIDs(t *testing.T, parent int, arg string) []int {
	t.Helper()
	var out []int
	for _, p := range processes(t) {
		if p.ppid == parent && slices.Contains(p.args, arg) {
			out = append(out, p.pid)
		}
	}
	return out
}

// process is a running process as /proc shows it.
type process struct {
	pid, ppid int
	args      []string // its command line
}

// processes lists the running processes (Linux: /proc; t skips
// without it).
func processes(t testing.TB) []process {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []process
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		out = append(out, process{pid: pid, ppid: ppid, args: strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")})
	}
	return out
}

// dashboardMetrics are the metric names deploy/grafana's dashboard reads.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../deploy/grafana/sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	used, err := grafana.Metrics(b)
	if err != nil {
		t.Fatal(err)
	}
	return used
}
