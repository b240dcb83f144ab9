package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkAutoscale measures the autoscaler on the platform under test:
//
//   - wake_ms: a deployment at zero replicas, the time from a request to
//     its answer (the record wakes the deployment, a replica starts, joins
//     the group and answers), next to warm_ms, the same request with the
//     replica up: wake_x_warm is their ratio;
//   - spike_ms: a deployment at one replica gets a spike of records
//     produced at once; the time until a second replica holds partitions
//     of the group, next to poll_ms, the deployment's poll interval.
//
// Each is repeated b.N times; medians are reported.
func BenchmarkAutoscale(b *testing.B) {
	benchRuns++ // each run its own application: b.N grows over runs
	app := fmt.Sprintf("benchscale%d", benchRuns)
	spec := fmt.Sprintf(elasticYAML, app, "scale_down_delay: 500ms, scale_to_zero_after: 1s")
	if code, out := run(b, "deploy", "-f", writeFile(b, "s.yaml", spec)); code != 0 {
		b.Fatalf("deploy: %s", out)
	}
	defer run(b, "delete", app)
	cl, err := kgo.NewClient(append(seed(), kgo.ProducerLinger(0))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	group := namer.Group(app, "F")

	var wake, warm, spike []time.Duration
	for i := 0; i < b.N; i++ {
		waitMembers(b, adm, group, func(n int) bool { return n == 0 }, "scaled to zero")
		start := time.Now()
		if code, got := post(b, "/"+app, `{"echo":"x"}`); code != 200 || got != "x" {
			b.Fatalf("first request: %d %q", code, got)
		}
		wake = append(wake, time.Since(start))
		start = time.Now()
		if code, _ := post(b, "/"+app, `{"echo":"y"}`); code != 200 {
			b.Fatalf("warm request: %d", code)
		}
		warm = append(warm, time.Since(start))

		// One replica now; a spike of 200 slow records needs more.
		waitMembers(b, adm, group, func(n int) bool { return n == 1 }, "one replica")
		recs := make([]*kgo.Record, 200)
		for j := range recs {
			recs[j] = &kgo.Record{Topic: namer.Ingress(app), Value: []byte(`{"echo":"s","sleep_ms":20}`)}
		}
		start = time.Now()
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		waitMembers(b, adm, group, func(n int) bool { return n >= 2 }, "a second replica")
		spike = append(spike, time.Since(start))
	}
	med := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(wake), "wake_ms")
	b.ReportMetric(med(warm), "warm_ms")
	b.ReportMetric(med(wake)/med(warm), "wake_x_warm")
	b.ReportMetric(med(spike), "spike_ms")
	b.ReportMetric(500, "poll_ms")
	b.Logf("wake %v, warm %v, spike %v", wake, warm, spike)
}

var benchRuns int

// waitMembers waits until the number of group members holding partitions
// satisfies ok.
func waitMembers(b *testing.B, adm *kadm.Client, group string, ok func(int) bool, what string) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		gs, err := adm.DescribeGroups(context.Background(), group)
		n := 0
		if err == nil {
			for _, m := range gs[group].Members {
				if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 {
					n++
				}
			}
			// At zero, wait for the group to be empty: stopped replicas
			// have left, so the wake-up is measured from a cold group.
			if ok(n) && (n == 0 && len(gs[group].Members) == 0 || n > 0 && gs[group].State == "Stable") {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not within 60s (members with partitions: %d, err %v)", what, n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
