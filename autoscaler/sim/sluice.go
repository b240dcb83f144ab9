package sim

import (
	"time"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/platform/spec"
)

// epoch anchors the simulated clock for autoscaler.Decide, which reads
// times, never a clock.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// sluice is our policy as the Scaler runs it: autoscaler.Decide on an
// observation every poll_interval, and at once when a request arrives at
// a deployment at zero (the wake-up push).
type sluice struct {
	o          autoscaler.Options
	poll       time.Duration
	partitions int
	state      autoscaler.State
	next       time.Duration // the next poll
}

// Sluice is our policy with the spec's defaults for a deployment of m:
// an app of one deployment with max_ongoing_requests and replicas from m,
// everything else defaulted by spec.App.Default.
func Sluice(m Model) (Policy, error) {
	app := &spec.App{
		Name: "sim", RoutePrefix: "/sim", Ingress: "model", Partitions: int32(m.Partitions),
		Deployments: []spec.Deployment{{
			Name:               "model",
			MaxOngoingRequests: m.MaxOngoing,
			Replicas:           spec.Replicas{Min: m.Min, Initial: m.Initial, Max: m.Max},
		}},
	}
	app.Default()
	if err := app.Validate(); err != nil {
		return nil, err
	}
	d := app.Deployments[0]
	return &sluice{
		o:          autoscaler.OptionsFor(d),
		poll:       time.Duration(d.Autoscaling.PollInterval),
		partitions: m.Partitions,
		next:       time.Duration(d.Autoscaling.PollInterval),
	}, nil
}

func (s *sluice) Tick(v View) int {
	wake := v.Current == 0 && v.Arrived > 0
	if v.Now < s.next && !wake {
		return v.Current
	}
	for s.next <= v.Now {
		s.next += s.poll
	}
	d, st := autoscaler.Decide(s.o, s.state, autoscaler.Observation{
		Time:       epoch.Add(v.Now),
		Lag:        int64(v.Lag()),
		Ongoing:    int64(v.InFlight),
		Current:    v.Current,
		Ready:      v.Ready,
		Partitions: s.partitions,
	})
	s.state = st
	return d.To
}
