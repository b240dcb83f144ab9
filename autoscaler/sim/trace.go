package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// A Trace is a load to replay: requests arriving by a Poisson process of
// rate Rate(t), plus lone requests at the times in Singles.
type Trace struct {
	Name     string
	Duration time.Duration
	Rate     func(t time.Duration) float64 // requests per second at t
	Peak     float64                       // the highest Rate over the trace
	Singles  []time.Duration
	// Surge is when the first burst or step begins: time to absorb is
	// measured from it (see Result.Absorb).
	Surge time.Duration
	Seed  uint64
}

// Traces are the loads the policies are compared on. Each lasts long
// enough for Ray Serve's 600 s downscale delay to show.
func Traces() []Trace {
	return []Trace{StepTrace(), BurstTrace(), DiurnalTrace(), SpikeToZeroTrace()}
}

// StepTrace is 5 req/s, then 60 req/s from t = 60 s on.
func StepTrace() Trace {
	return Trace{
		Name: "step", Duration: 30 * time.Minute, Peak: 60, Surge: time.Minute, Seed: 1,
		Rate: func(t time.Duration) float64 {
			if t < time.Minute {
				return 5
			}
			return 60
		},
	}
}

// BurstTrace is 10 req/s with bursts of 150 req/s for 20 s every 5
// minutes, the first at t = 60 s.
func BurstTrace() Trace {
	return Trace{
		Name: "burst", Duration: 30 * time.Minute, Peak: 150, Surge: time.Minute, Seed: 2,
		Rate: func(t time.Duration) float64 {
			if t >= time.Minute && (t-time.Minute)%(5*time.Minute) < 20*time.Second {
				return 150
			}
			return 10
		},
	}
}

// DiurnalTrace is a day compressed into 20 minutes, twice: a smooth cycle
// from 2 req/s up to 100 req/s and back. Its surge is taken where the
// first rise is steepest (t = 5 min).
func DiurnalTrace() Trace {
	const period = 20 * time.Minute
	return Trace{
		Name: "diurnal", Duration: 2 * period, Peak: 100, Surge: period / 4, Seed: 3,
		Rate: func(t time.Duration) float64 {
			phase := 2 * math.Pi * float64(t) / float64(period)
			return 2 + 98*(1-math.Cos(phase))/2
		},
	}
}

// SpikeToZeroTrace is a 100 req/s spike for 30 s (from t = 10 s), then
// nothing for ten minutes, then a lone request every 3 minutes: it makes
// the policies scale to zero and start cold.
func SpikeToZeroTrace() Trace {
	tr := Trace{
		Name: "spike-to-zero", Duration: 30 * time.Minute, Peak: 100, Surge: 10 * time.Second, Seed: 4,
		Rate: func(t time.Duration) float64 {
			if t >= 10*time.Second && t < 40*time.Second {
				return 100
			}
			return 0
		},
	}
	for t := 10 * time.Minute; t < tr.Duration; t += 3 * time.Minute {
		tr.Singles = append(tr.Singles, t)
	}
	return tr
}

// arrivals draws the trace's arrival times, sorted. The Poisson process
// of varying rate is drawn by thinning one of rate Peak (Lewis and
// Shedler): a candidate at t is kept with probability Rate(t)/Peak. The
// same seed gives the same arrivals.
func (tr Trace) arrivals() []time.Duration {
	var out []time.Duration
	if tr.Peak > 0 {
		rng := rand.New(rand.NewPCG(tr.Seed, 0x5eed))
		t := time.Duration(0)
		for {
			t += time.Duration(rng.ExpFloat64() / tr.Peak * float64(time.Second))
			if t >= tr.Duration {
				break
			}
			if rng.Float64()*tr.Peak < tr.Rate(t) {
				out = append(out, t)
			}
		}
	}
	for _, s := range tr.Singles {
		if s >= 0 && s < tr.Duration {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
