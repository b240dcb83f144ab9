package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/examples/hello"
	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// BenchmarkMetricsScrape times a scrape of a standalone gateway's
// /metrics (its own series, each deployment's from the status view, its
// runtime's and its Kafka client's) with 1 application deployed, then
// with 100, in the same run on `sluice node` + `sluice gateway`
// (deployments at zero: the view still reads every group's lag). The
// 100-application figure is reported as a multiple of the 1's.
//
//	go test ./e2e -run '^$' -bench MetricsScrape -benchtime 200x
func BenchmarkMetricsScrape(b *testing.B) {
	n := startNode(b)
	app := func(i int) string {
		return fmt.Sprintf(`name: scrape%d
route_prefix: /scrape%d
ingress: Add
deployments:
  - {name: Add, handler: Adder, args: [1], replicas: {min: 0, initial: 0, max: 1}}
  - {name: Times, handler: Multiplier, args: [2], replicas: {min: 0, initial: 0, max: 1}}
edges:
  - {from: Add, to: Times}
`, i, i)
	}
	deploy := func(from, to int) {
		var docs []string
		for i := from; i < to; i++ {
			docs = append(docs, app(i))
		}
		f := writeFile(b, "scrape.yaml", strings.Join(docs, "---\n"))
		if out, err := exec.Command(n.bin, "deploy", "-f", f, "--addr", n.addr).CombinedOutput(); err != nil {
			b.Fatalf("deploy: %v\n%s", err, out)
		}
	}
	scrape := func() int {
		resp, err := http.Get("http://" + n.addr + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("scrape: %d", resp.StatusCode)
		}
		return strings.Count(string(body), "\nsluice_deployment_replicas{")
	}
	var one time.Duration
	for _, apps := range []int{1, 100} {
		if apps == 1 {
			deploy(0, 1)
		} else {
			deploy(1, apps)
		}
		deadline := time.Now().Add(3 * time.Minute)
		for scrape() < 2*apps { // every deployment in the view
			if time.Now().After(deadline) {
				b.Fatalf("the gateway shows fewer than %d deployments", 2*apps)
			}
			time.Sleep(200 * time.Millisecond)
		}
		b.Run(fmt.Sprintf("apps=%d", apps), func(b *testing.B) {
			start := time.Now()
			for range b.N {
				scrape()
			}
			per := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/scrape")
			if apps == 1 {
				one = per
			} else if one > 0 {
				b.ReportMetric(float64(per)/float64(one), "x_1app")
			}
		})
	}
}

// BenchmarkMetricsOverhead measures the core path's cost of the metrics:
// two dev platforms in this process on the same broker, one exporting
// everything (replica histograms and counters, model caches, franz-go
// client hooks on every client) and one the gateway's own series only
// (what the hand-written exposition counted), serve hello at concurrency
// 64 over REST, in turns. Each reports p50, p99 and requests per second;
// the metered one also its throughput as a fraction of the baseline's in
// its round, and the log the medians over the rounds.
//
//	go test ./e2e -run '^$' -bench MetricsOverhead -benchtime 5000x
func BenchmarkMetricsOverhead(b *testing.B) {
	start := func(off bool) *cli.Dev {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		d, err := cli.StartDev(ctx, cli.DevConfig{
			HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Brokers: plat.Brokers, Prefix: "m" + streams.Instance(),
			Registry: registry, Apps: []*spec.App{hello.App().Spec()}, Log: testLog, NoMetrics: off,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		return d
	}
	devs := map[string]*cli.Dev{"baseline": start(true), "metered": start(false)}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	call := func(addr string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/hello", strings.NewReader(`{"language":"spanish","name":"Dora"}`))
			resp, err := httpc.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	rps := map[string]float64{} // by sub-benchmark: the last run's (b.N as asked)
	const rounds = 6            // in turns: a shared machine's noise falls on both
	for round := range rounds {
		for _, name := range []string{"baseline", "metered"} {
			b.Run(fmt.Sprintf("%s/c64/round%d", name, round), func(b *testing.B) {
				p50, p99, r := load(b, 64, call(devs[name].Addr))
				b.ReportMetric(p50, "p50_ms")
				b.ReportMetric(p99, "p99_ms")
				b.ReportMetric(r, "req/s")
				rps[fmt.Sprint(name, round)] = r
				if base := rps[fmt.Sprint("baseline", round)]; name == "metered" && base > 0 {
					b.ReportMetric(r/base, "x_baseline_rps")
				}
			})
		}
	}
	var base, metered []float64
	for round := range rounds {
		base, metered = append(base, rps[fmt.Sprint("baseline", round)]), append(metered, rps[fmt.Sprint("metered", round)])
	}
	slices.Sort(base)
	slices.Sort(metered)
	b.Logf("c64 req/s, median of %d rounds: baseline %.0f, metered %.0f (x%.3f)", rounds, base[rounds/2], metered[rounds/2], metered[rounds/2]/base[rounds/2])
}
