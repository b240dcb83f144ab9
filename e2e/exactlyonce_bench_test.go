package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkExactlyOnce runs the same offline batch through the same
// 2-deployment chain (chainYAML, two replicas a deployment) deployed
// twice on the platform under test, at_least_once and exactly_once, and
// reports the throughput of each (records a second, first produce to the
// last key read read_committed from the output topic) and their ratio,
// then the p50 of 200 sync calls through each, one at a time.
// Each iteration runs one batch through each, alternating which goes
// first.
//
//	go test ./e2e -run '^$' -bench ExactlyOnce -benchtime 3x
func BenchmarkExactlyOnce(b *testing.B) {
	const batch = 20_000
	apps := map[string]string{"at_least_once": "eosbench-alo", "exactly_once": "eosbench-eos"}
	for delivery, app := range apps {
		f := writeFileB(b, app+".yaml", fmt.Sprintf(chainYAML, app, delivery))
		if code, out := run(b, "deploy", "-f", f); code != 0 {
			b.Fatalf("deploy %s: exit %d: %s", app, code, out)
		}
	}
	b.Cleanup(func() {
		for _, app := range apps {
			run(b, "delete", app)
		}
	})
	once := func(app string, from int) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		r := readBatch(ctx, b, namer.Output(app), from, batch, true)
		began := time.Now()
		if err := produceBatch(ctx, namer.Ingress(app), from, batch, 0); err != nil {
			b.Fatalf("produce: %v", err)
		}
		select {
		case <-r.full:
		case <-ctx.Done():
			b.Fatalf("%s: %d of %d keys out within 5 minutes", app, r.out(), batch)
		}
		took := time.Since(began)
		cancel()
		<-r.done
		if len(r.wrong) > 0 {
			b.Fatalf("%s: wrong results %v", app, r.wrong)
		}
		return took
	}
	// Warm both (replicas joined, topics' leaders known) with a small batch.
	for _, app := range apps {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r := readBatch(ctx, b, namer.Output(app), -100, 100, true)
		if err := produceBatch(ctx, namer.Ingress(app), -100, 100, 0); err != nil {
			b.Fatal(err)
		}
		select {
		case <-r.full:
		case <-ctx.Done():
			b.Fatalf("%s: warm-up batch not out within a minute", app)
		}
		cancel()
		<-r.done
	}
	var alo, eos time.Duration
	i := 0
	for ; b.Loop(); i++ {
		from := i * batch
		if i%2 == 0 {
			alo += once(apps["at_least_once"], from)
			eos += once(apps["exactly_once"], from)
		} else {
			eos += once(apps["exactly_once"], from)
			alo += once(apps["at_least_once"], from)
		}
	}
	n := float64(i * batch)
	b.ReportMetric(n/alo.Seconds(), "alo_rec/s")
	b.ReportMetric(n/eos.Seconds(), "eos_rec/s")
	b.ReportMetric(alo.Seconds()/eos.Seconds(), "eos/alo")
	// Sync calls through the same chains, one at a time, interleaved:
	// the latency a transaction window adds to a hop.
	const calls = 200
	lat := map[string][]time.Duration{}
	for k := range calls {
		for _, app := range []string{apps["at_least_once"], apps["exactly_once"]} {
			began := time.Now()
			if code, got := post(b, "/"+app, strconv.Itoa(k)); code != http.StatusOK || got != strconv.Itoa(2*(k+1)) {
				b.Fatalf("POST /%s %d = %d %q", app, k, code, got)
			}
			lat[app] = append(lat[app], time.Since(began))
		}
	}
	p50 := func(app string) float64 {
		ds := lat[app]
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	b.ReportMetric(p50(apps["at_least_once"]), "alo_sync_p50_ms")
	b.ReportMetric(p50(apps["exactly_once"]), "eos_sync_p50_ms")
	b.ReportMetric(0, "ns/op")
}
