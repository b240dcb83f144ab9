// Package autoscaler sizes each deployment from what its consumer group
// has not yet done. The policy (Decide) is a pure function of a
// deployment's options, what it remembers and one observation; the Scaler
// feeds it observations (lag polled from the brokers, records arriving at a
// deployment at zero) and hands its decisions to an Actuator.
package autoscaler

import (
	"fmt"
	"math"
	"time"

	"github.com/sluice-serve/sluice/platform/spec"
)

// PanicWindow is how long a burst keeps the policy from scaling down: a
// demand of at least twice the ready capacity starts it.
const PanicWindow = 6 * time.Second

// Lookahead is how far ahead growing lag is projected: about the time a
// new replica takes to start consuming.
const Lookahead = time.Second

// RateSpan is the least time lag growth is measured over: shorter spans
// (a wake-up right after a poll) would turn one record into a flood.
const RateSpan = time.Second

// Options are a deployment's bounds and tuning, from its spec.
type Options struct {
	Min, Max, Initial int
	TargetLag         float64 // lag one replica should carry
	TargetOngoing     float64 // in-flight requests one replica should carry; 0: lag only
	ActivationLag     int64
	UpDelay           time.Duration
	DownDelay         time.Duration
	ZeroAfter         time.Duration
	AddPartitions     bool
}

// OptionsFor reads the options of a defaulted deployment spec.
func OptionsFor(d spec.Deployment) Options {
	a := d.Autoscaling
	return Options{
		Min: d.Replicas.Min, Max: d.Replicas.Max, Initial: d.Replicas.Initial,
		TargetLag: a.TargetLagPerReplica, TargetOngoing: a.TargetOngoingRequests, ActivationLag: a.ActivationLag,
		UpDelay: time.Duration(a.ScaleUpDelay), DownDelay: time.Duration(a.ScaleDownDelay),
		ZeroAfter: time.Duration(a.ScaleToZeroAfter), AddPartitions: a.AddPartitions,
	}
}

// Observation is what was seen of one deployment at one time.
type Observation struct {
	Time       time.Time
	Lag        int64 // records not yet done on the input topics
	Ongoing    int64 // requests in flight over all replicas; 0 where not reported
	Current    int   // replicas started or starting
	Ready      int   // replicas consuming
	Partitions int   // partitions of the input topics together; 0: unknown
	Err        error // the lag could not be read: Lag means nothing
}

// Decision is what the policy wants of one deployment.
type Decision struct {
	Time   time.Time `json:"time"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
	Lag    int64     `json:"lag"`
	Rate   float64   `json:"rate"` // lag growth, records per second
	Demand float64   `json:"demand"`
	Panic  bool      `json:"panic,omitempty"`
	// Partitions, when > 0, is the partition count each input topic
	// should grow to before To replicas can all consume.
	Partitions int `json:"partitions,omitempty"`
}

// Changes reports whether the decision changes the size.
func (d Decision) Changes() bool { return d.To != d.From || d.Partitions > 0 }

// State is what the policy remembers of a deployment between
// observations. The zero State is a deployment never observed.
type State struct {
	window     []point // demand (in replicas) over the stable window
	lags       []lagPoint
	since      time.Time // first observation
	activeAt   time.Time // lag or work last seen
	upSince    time.Time // demand above the size since then
	upMin      int       // the least demand since upSince
	panicUntil time.Time
}

type point struct {
	at      time.Time
	desired int
}

type lagPoint struct {
	at  time.Time
	lag int64
}

// Decide is the policy: it turns one observation into a decision and the
// state to pass to the next call. It reads no clock and keeps nothing
// else, so the same inputs always give the same decisions.
//
//   - A lag read failure keeps the size.
//   - Demand is max(lag / TargetLag, ongoing / TargetOngoing) replicas,
//     clamped to [Min, Max] and to the partitions (unless AddPartitions).
//   - At zero, a lag of at least ActivationLag (or anything in flight)
//     wakes the deployment at once.
//   - A burst, the demand with lag projected Lookahead ahead at its growth
//     rate reaching 2× the ready replicas, scales up at once to that
//     demand and opens PanicWindow, in which nothing scales down.
//   - Otherwise up once demand has exceeded the size for UpDelay, to the
//     least demand seen over it.
//   - Down to the highest demand of the last DownDelay; to zero only after
//     ZeroAfter with no lag and nothing in flight.
func Decide(o Options, s State, ob Observation) (Decision, State) {
	now := ob.Time
	d := Decision{Time: now, From: ob.Current, To: ob.Current}
	if ob.Err != nil {
		d.Reason = fmt.Sprintf("lag not read (%v): keeping %d", ob.Err, ob.Current)
		return d, s
	}
	lag := max(ob.Lag, 0)
	d.Lag = lag
	d.Rate, s.lags = growth(s.lags, now, lag)
	if s.since.IsZero() {
		s.since, s.activeAt = now, now
	}
	if lag > 0 || ob.Ongoing > 0 {
		s.activeAt = now
	}

	// Demand now sizes steady changes and fills the stable window; lag
	// projected Lookahead ahead at its growth rate only detects a burst
	// and sizes the answer to it (projecting noise into the window would
	// keep replicas nobody needs).
	d.Demand = float64(lag) / o.TargetLag
	burst := (float64(lag) + max(d.Rate, 0)*Lookahead.Seconds()) / o.TargetLag
	if o.TargetOngoing > 0 {
		busy := float64(ob.Ongoing) / o.TargetOngoing
		d.Demand, burst = max(d.Demand, busy), max(burst, busy)
	}
	capped := ""
	bound := func(x float64) int {
		n := min(max(ceil(x), o.Min), o.Max)
		if ob.Partitions > 0 && n > ob.Partitions && !o.AddPartitions {
			capped = fmt.Sprintf(" (capped at the %d partitions)", ob.Partitions)
			n = ob.Partitions
		}
		return n
	}
	desired := bound(d.Demand)
	s.window = append(s.window, point{now, desired})
	for len(s.window) > 1 && now.Sub(s.window[0].at) >= o.DownDelay {
		s.window = s.window[1:]
	}

	switch {
	case ob.Current < o.Min:
		return d.grow(max(o.Min, desired), ob, o, "below replicas.min %d", o.Min), s
	case ob.Current > o.Max:
		return d.to(o.Max, "above replicas.max %d", o.Max), s
	case ob.Current == 0:
		if lag >= o.ActivationLag || ob.Ongoing > 0 {
			n := max(bound(burst), 1)
			return d.grow(n, ob, o, "woken: lag %d ≥ activation_lag %d%s", lag, o.ActivationLag, capped), s
		}
		return d.hold("idle at zero"), s
	}

	ready := max(ob.Ready, 1)
	if burst >= 2*float64(ready) && bound(burst) > ob.Current {
		s.panicUntil = now.Add(PanicWindow)
		n := bound(burst)
		s.upSince = time.Time{}
		d.Panic = true
		return d.grow(n, ob, o, "burst: demand %.1f replicas ≥ 2× %d ready (lag %d, %+.0f/s)%s", burst, ob.Ready, lag, d.Rate, capped), s
	}
	d.Panic = now.Before(s.panicUntil)
	if desired > ob.Current {
		// Up after UpDelay, to the least demand seen meanwhile: noise
		// that lasts less than the delay moves nothing.
		if s.upSince.IsZero() || desired < s.upMin {
			s.upMin = desired
		}
		if s.upSince.IsZero() {
			s.upSince = now
		}
		if now.Sub(s.upSince) >= o.UpDelay && s.upMin > ob.Current {
			n := s.upMin
			s.upSince = time.Time{}
			return d.grow(n, ob, o, "lag %d over %.0f per replica for %v (demand %.1f)%s", lag, o.TargetLag, o.UpDelay, d.Demand, capped), s
		}
		return d.hold("demand %.1f for %v of scale_up_delay %v", d.Demand, now.Sub(s.upSince), o.UpDelay), s
	}
	s.upSince = time.Time{}
	if desired == ob.Current {
		return d.hold("demand %.1f fits %d", d.Demand, ob.Current), s
	}
	if d.Panic {
		return d.hold("no scale down in a burst (until %s)", s.panicUntil.Format(time.TimeOnly)), s
	}
	if now.Sub(s.since) < o.DownDelay {
		return d.hold("demand %.1f, watching for scale_down_delay %v", d.Demand, o.DownDelay), s
	}
	stable := 0
	for _, p := range s.window {
		stable = max(stable, p.desired)
	}
	if stable >= ob.Current {
		return d.hold("demand reached %d within scale_down_delay %v", stable, o.DownDelay), s
	}
	if stable == 0 {
		idle := now.Sub(s.activeAt)
		if idle >= o.ZeroAfter {
			return d.to(0, "no lag and nothing in flight for %v", idle.Round(time.Second)), s
		}
		if ob.Current == 1 {
			return d.hold("idle for %v of scale_to_zero_after %v", idle.Round(time.Second), o.ZeroAfter), s
		}
		stable = 1
	}
	return d.to(stable, "demand at most %d over scale_down_delay %v", stable, o.DownDelay), s
}

// growth is the lag's growth rate over at least RateSpan (0 until there
// is that much history), and the history to keep.
func growth(h []lagPoint, now time.Time, lag int64) (float64, []lagPoint) {
	// Keep the newest point at least RateSpan old, and the newer ones.
	for len(h) > 1 && now.Sub(h[1].at) >= RateSpan {
		h = h[1:]
	}
	rate := 0.0
	if len(h) > 0 && now.Sub(h[0].at) >= RateSpan {
		rate = float64(lag-h[0].lag) / now.Sub(h[0].at).Seconds()
	}
	return rate, append(h, lagPoint{now, lag})
}

// grow scales up to n, asking for partitions first where n exceeds them
// and the options allow adding them.
func (d Decision) grow(n int, ob Observation, o Options, format string, args ...any) Decision {
	if o.AddPartitions && ob.Partitions > 0 && n > ob.Partitions {
		d.Partitions = n
	}
	return d.to(n, format, args...)
}

func (d Decision) to(n int, format string, args ...any) Decision {
	d.To = n
	d.Reason = fmt.Sprintf(format, args...)
	return d
}

func (d Decision) hold(format string, args ...any) Decision {
	d.Reason = fmt.Sprintf(format, args...)
	return d
}

// ceil rounds demand up, forgiving float noise just above a whole number.
func ceil(x float64) int {
	if x <= 0 || math.IsNaN(x) {
		return 0
	}
	return int(math.Ceil(x - 1e-9))
}
