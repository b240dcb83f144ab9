package autoscaler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/platform/spec"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func opts() Options {
	return Options{Min: 0, Max: 8, Initial: 1, TargetLag: 10, ActivationLag: 1,
		DownDelay: 30 * time.Second, ZeroAfter: 60 * time.Second}
}

// step is one observation and what the policy must answer to it.
type step struct {
	at      time.Duration // since t0
	lag     int64
	ongoing int64
	current int // -1: the size the previous step decided
	ready   int // -1: the same as current
	err     error
	want    int
	reason  string // a substring of the reason
	panic   bool
}

func run(t *testing.T, o Options, parts int, steps []step) {
	t.Helper()
	var s State
	size := o.Initial
	for i, st := range steps {
		cur := st.current
		if cur < 0 {
			cur = size
		}
		ready := st.ready
		if ready < 0 {
			ready = cur
		}
		ob := Observation{Time: t0.Add(st.at), Lag: st.lag, Ongoing: st.ongoing, Current: cur, Ready: ready, Partitions: parts, Err: st.err}
		var d Decision
		d, s = Decide(o, s, ob)
		if d.To != st.want || !strings.Contains(d.Reason, st.reason) || d.Panic != st.panic {
			t.Fatalf("step %d (t=%v lag=%d current=%d): got %d %q panic=%v, want %d %q panic=%v",
				i, st.at, st.lag, cur, d.To, d.Reason, d.Panic, st.want, st.reason, st.panic)
		}
		size = d.To
	}
}

func TestDecide(t *testing.T) {
	sec := time.Second
	cases := []struct {
		name  string
		o     func(*Options)
		parts int
		steps []step
	}{
		{"steady load fits", nil, 8, []step{
			{0, 5, 0, 1, -1, nil, 1, "fits", false},
			{sec, 6, 0, -1, -1, nil, 1, "fits", false},
		}},
		{"burst scales up at once and blocks scale down", nil, 8, []step{
			{0, 5, 0, 1, -1, nil, 1, "fits", false},
			{sec, 45, 0, -1, -1, nil, 8, "burst: demand 8.5", true},
			// demand drops, but the panic window holds the size
			{2 * sec, 3, 0, -1, -1, nil, 8, "no scale down in a burst", true},
			{6 * sec, 3, 0, -1, -1, nil, 8, "no scale down in a burst", true},
			// after the panic window, the stable window still remembers 8
			{8 * sec, 3, 0, -1, -1, nil, 8, "watching", false},
			{20 * sec, 3, 0, -1, -1, nil, 8, "watching", false},
			// the window holds the demand of the burst (45/10 → 5), not its projection
			{30 * sec, 3, 0, -1, -1, nil, 5, "demand at most 5 over scale_down_delay", false},
			{40 * sec, 3, 0, -1, -1, nil, 1, "at most 1", false},
		}},
		{"growth is projected", nil, 8, []step{
			{0, 0, 0, 1, -1, nil, 1, "watching", false},
			// lag 15 growing 15/s: projected 30 → 3 replicas (≥ 2× ready: a burst)
			{sec, 15, 0, -1, -1, nil, 3, "burst", true},
		}},
		{"gentle rise goes up without panic", nil, 8, []step{
			{0, 10, 0, 2, -1, nil, 2, "watching", false},
			{10 * sec, 25, 0, -1, -1, nil, 3, "over 10 per replica", false},
		}},
		{"scale up delay", func(o *Options) { o.UpDelay = 3 * sec }, 8, []step{
			{0, 10, 0, 2, -1, nil, 2, "watching", false},
			{10 * sec, 25, 0, -1, -1, nil, 2, "scale_up_delay", false},
			{12 * sec, 25, 0, -1, -1, nil, 2, "scale_up_delay", false},
			{13 * sec, 25, 0, -1, -1, nil, 3, "over 10 per replica", false},
		}},
		{"to zero only after the idle period", nil, 8, []step{
			{0, 0, 0, 1, -1, nil, 1, "watching", false},
			{31 * sec, 0, 0, -1, -1, nil, 1, "idle for 31s of scale_to_zero_after 1m0s", false},
			{59 * sec, 0, 0, -1, -1, nil, 1, "idle", false},
			{60 * sec, 0, 0, -1, -1, nil, 0, "nothing in flight for 1m0s", false},
			{61 * sec, 0, 0, -1, -1, nil, 0, "idle at zero", false},
		}},
		{"in-flight work keeps a replica", nil, 8, []step{
			{0, 0, 0, 1, -1, nil, 1, "watching", false},
			{50 * sec, 0, 3, -1, -1, nil, 1, "idle for 0s", false},
			{100 * sec, 0, 0, -1, -1, nil, 1, "idle for 50s", false},
			{110 * sec, 0, 0, -1, -1, nil, 0, "nothing in flight", false},
		}},
		{"wakes from zero on activation lag", func(o *Options) { o.ActivationLag = 5 }, 8, []step{
			{0, 4, 0, 0, -1, nil, 0, "idle at zero", false},
			{sec, 5, 0, -1, -1, nil, 1, "woken: lag 5 ≥ activation_lag 5", false},
		}},
		{"one record right after a poll is not a flood", nil, 8, []step{
			{0, 0, 0, 0, -1, nil, 0, "idle at zero", false},
			{10 * time.Millisecond, 1, 0, -1, -1, nil, 1, "woken: lag 1", false},
		}},
		{"wakes to the demand", nil, 8, []step{
			{0, 0, 0, 0, -1, nil, 0, "idle at zero", false},
			{sec, 35, 0, -1, -1, nil, 7, "woken", false}, // 35 now, 70 projected
		}},
		{"a lag read failure keeps the size, even idle", nil, 8, []step{
			{0, 0, 0, 2, -1, nil, 2, "watching", false},
			{90 * sec, 0, 0, -1, -1, errors.New("broker down"), 2, "lag not read (broker down): keeping 2", false},
			{91 * sec, 0, 0, 0, -1, errors.New("broker down"), 0, "lag not read", false},
		}},
		{"capped at partitions", nil, 4, []step{
			{0, 200, 0, 1, -1, nil, 4, "capped at the 4 partitions", true},
		}},
		{"min and max", func(o *Options) { o.Min, o.Max = 2, 3 }, 8, []step{
			{0, 0, 0, 0, -1, nil, 2, "below replicas.min 2", false},
			{sec, 500, 0, -1, -1, nil, 3, "burst", true},
			{2 * sec, 0, 0, 5, -1, nil, 3, "above replicas.max 3", false},
		}},
		{"ongoing target", func(o *Options) { o.TargetOngoing = 2; o.TargetLag = 1000 }, 8, []step{
			{0, 0, 2, 1, -1, nil, 1, "fits", false},
			{10 * sec, 0, 5, -1, -1, nil, 3, "burst", true},
		}},
		{"replicas not ready count as no capacity", nil, 8, []step{
			{0, 10, 0, 2, 0, nil, 2, "watching", false},
			{10 * sec, 25, 0, -1, 0, nil, 3, "burst", true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := opts()
			if c.o != nil {
				c.o(&o)
			}
			run(t, o, c.parts, c.steps)
		})
	}
}

func TestDecideAddsPartitions(t *testing.T) {
	o := opts()
	o.AddPartitions, o.Max = true, 12
	d, _ := Decide(o, State{}, Observation{Time: t0, Lag: 100, Current: 2, Ready: 2, Partitions: 8})
	if d.To != 10 || d.Partitions != 10 || !d.Changes() {
		t.Fatalf("got %+v, want 10 replicas over 10 partitions", d)
	}
	d, _ = Decide(o, State{}, Observation{Time: t0, Lag: 500, Current: 2, Ready: 2, Partitions: 8})
	if d.To != 12 || d.Partitions != 12 {
		t.Fatalf("got %+v, want 12 (replicas.max)", d)
	}
}

// TestDecideIsPure replays one trace twice: the same decisions.
func TestDecideIsPure(t *testing.T) {
	o := opts()
	trace := func() []Decision {
		var s State
		var out []Decision
		size := 1
		for i := range 400 {
			lag := int64((i * 37) % 90)
			if i > 200 {
				lag = 0
			}
			var d Decision
			d, s = Decide(o, s, Observation{Time: t0.Add(time.Duration(i) * 500 * time.Millisecond), Lag: lag, Current: size, Ready: size, Partitions: 8})
			size = d.To
			out = append(out, d)
		}
		return out
	}
	a, b := trace(), trace()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("decision %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
	if a[len(a)-1].To != 0 {
		t.Fatalf("an idle deployment with min 0 ends at %d, want 0", a[len(a)-1].To)
	}
}

func TestOptionsFor(t *testing.T) {
	app := &spec.App{Name: "a", Ingress: "d", Deployments: []spec.Deployment{{Name: "d", MaxOngoingRequests: 10, Replicas: spec.Replicas{Initial: 1, Max: 4}}}}
	app.Default()
	o := OptionsFor(app.Deployments[0])
	if o.TargetLag != 10 || o.UpDelay != 3*time.Second || o.ActivationLag != 1 || o.DownDelay != 30*time.Second || o.ZeroAfter != time.Minute || o.Max != 4 || o.Min != 0 {
		t.Fatalf("defaults: %+v", o)
	}
}
