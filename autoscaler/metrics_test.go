package autoscaler

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The Scaler's series: a deployment woken from zero counts one decision
// up and holds before it, and shows the size it runs and the lag it read.
func TestScalerMetrics(t *testing.T) {
	k := newLagKafka(t)
	in := k.topic(t, "metrics-in", 2)
	tg := Target{App: "a", Deployment: "d"}
	act := &fakeActuator{size: map[Target]int{}}
	s, _ := startScaler(t, k, act, Deployment{Target: tg, Group: k.group(t, "metrics"), Inputs: []string{in}, Options: zeroOptions(), Poll: time.Hour})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	waitStatus(t, s, tg, "idle at zero", func(st Status) bool { return strings.Contains(st.Last.Reason, "idle at zero") })
	k.produce(t, in, 0, 3)
	waitStatus(t, s, tg, "woken", func(st Status) bool { return st.Current == 1 })

	want := `
# HELP sluice_autoscaler_decisions_total Autoscaler decisions, by direction: up, down, hold (the size kept).
# TYPE sluice_autoscaler_decisions_total counter
sluice_autoscaler_decisions_total{app="a",deployment="d",direction="down"} 0
sluice_autoscaler_decisions_total{app="a",deployment="d",direction="hold"} 1
sluice_autoscaler_decisions_total{app="a",deployment="d",direction="up"} 1
# HELP sluice_autoscaler_replicas Replicas the actuator runs for the deployment.
# TYPE sluice_autoscaler_replicas gauge
sluice_autoscaler_replicas{app="a",deployment="d"} 1
# HELP sluice_autoscaler_desired_replicas Replicas the latest decision asked for.
# TYPE sluice_autoscaler_desired_replicas gauge
sluice_autoscaler_desired_replicas{app="a",deployment="d"} 1
# HELP sluice_autoscaler_lag Consumer-group lag of the deployment, as the autoscaler last read it (records).
# TYPE sluice_autoscaler_lag gauge
sluice_autoscaler_lag{app="a",deployment="d"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sluice_autoscaler_decisions_total", "sluice_autoscaler_replicas",
		"sluice_autoscaler_desired_replicas", "sluice_autoscaler_lag"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
