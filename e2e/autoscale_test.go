package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// elasticYAML is an application of one Faults deployment from zero to
// four replicas of four requests in flight, with autoscaling options.
const elasticYAML = `name: %[1]s
route_prefix: /%[1]s
ingress: F
deployments:
  - name: F
    handler: Faults
    max_ongoing_requests: 4
    replicas: {min: 0, initial: 0, max: 4}
    autoscaling: {target_lag_per_replica: 4, %[2]s}
`

// echoLoad runs callers of Faults echoes (each sleeping sleepMS) until
// the returned stop is called; stop reports requests sent and answered
// right, and fails the test for each wrong answer (up to 16 listed).
func echoLoad(t testing.TB, path string, callers, sleepMS int) (stop func() (sent, ok int64)) {
	ctx, cancel := context.WithCancel(context.Background())
	var nSent, nOK atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for w := range callers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				want := fmt.Sprintf("w%d-%d", w, i)
				nSent.Add(1)
				if code, got := post(t, path, fmt.Sprintf(`{"echo":%q,"sleep_ms":%d}`, want, sleepMS)); code != 200 || got != want {
					select {
					case errs <- fmt.Sprintf("%s: %d %q", want, code, got):
					default:
					}
					continue
				}
				nOK.Add(1)
			}
		})
	}
	return func() (int64, int64) {
		cancel()
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error("failed request:", e)
		}
		return nSent.Load(), nOK.Load()
	}
}

// autoscalerView is the part of `sluice status --json` these tests read.
type autoscalerView struct {
	Replicas   int `json:"replicas"`
	Autoscaler struct {
		Current  int    `json:"current"`
		Ready    int    `json:"ready"`
		Lag      string `json:"lag"` // int64 as a JSON string
		LagError string `json:"lag_error"`
		Last     struct {
			Reason string `json:"reason"`
		} `json:"last"`
		History []struct {
			From   int    `json:"from"`
			To     int    `json:"to"`
			Reason string `json:"reason"`
			Panic  bool   `json:"panic"`
		} `json:"history"`
	} `json:"autoscaler"`
}

func scaleStatus(t *testing.T, app string) autoscalerView {
	t.Helper()
	code, out := run(t, "status", "--json", app)
	if code != 0 {
		t.Fatalf("status: %d %s", code, out)
	}
	var st struct {
		Applications []struct {
			Deployments []autoscalerView `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Applications) != 1 || len(st.Applications[0].Deployments) != 1 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st.Applications[0].Deployments[0]
}

// waitScale polls the status until ok holds, failing after limit.
func waitScale(t *testing.T, app string, limit time.Duration, what string, ok func(autoscalerView) bool) autoscalerView {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v := scaleStatus(t, app)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last status %+v", what, limit, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A deployment with min 0 starts at zero, answers its first request (the
// record wakes it), grows under a burst, and goes back to zero when idle;
// no request fails on the way.
func TestAutoscaleFromZeroAndBack(t *testing.T) {
	t.Parallel()
	app := "elastic"
	if code, out := run(t, "deploy", "-f", writeFile(t, "e.yaml", fmt.Sprintf(elasticYAML, app, "scale_down_delay: 2s, scale_to_zero_after: 3s, poll_interval: 200ms"))); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	defer run(t, "delete", app)
	waitScale(t, app, 10*time.Second, "at zero", func(v autoscalerView) bool {
		return v.Replicas == 0 && strings.Contains(v.Autoscaler.Last.Reason, "idle at zero")
	})

	start := time.Now()
	if code, got := post(t, "/"+app, `{"echo":"first"}`); code != 200 || got != "first" {
		t.Fatalf("first request at zero: %d %q", code, got)
	}
	t.Logf("first answer from zero replicas after %v", time.Since(start).Round(time.Millisecond))
	v := scaleStatus(t, app)
	if len(v.Autoscaler.History) == 0 || !strings.Contains(v.Autoscaler.History[len(v.Autoscaler.History)-1].Reason, "woken") {
		t.Fatalf("no wake-up decision recorded: %+v", v.Autoscaler)
	}

	// A burst: 16 callers of 100 ms requests need 4 replicas of 4 in flight.
	stop := echoLoad(t, "/"+app, 16, 100)
	grown := waitScale(t, app, 20*time.Second, "grow under a burst", func(v autoscalerView) bool {
		return v.Replicas >= 3 && v.Autoscaler.Ready >= 3
	})
	sent, ok := stop()
	if ok != sent {
		t.Fatalf("%d of %d requests answered", ok, sent)
	}
	t.Logf("burst: %d requests, all answered; grew to %d: %+v", ok, grown.Replicas, grown.Autoscaler.History)

	idle := waitScale(t, app, 30*time.Second, "back to zero", func(v autoscalerView) bool { return v.Replicas == 0 })
	h := idle.Autoscaler.History
	if len(h) == 0 || h[len(h)-1].To != 0 || !strings.Contains(h[len(h)-1].Reason, "nothing in flight") {
		t.Fatalf("last change is not a scale to zero with its reason: %+v", h)
	}
	// And it wakes again.
	if code, got := post(t, "/"+app, `{"echo":"again"}`); code != 200 || got != "again" {
		t.Fatalf("request after scale to zero: %d %q", code, got)
	}
}
