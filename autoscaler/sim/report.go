package sim

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// CostSlack is how many more replica-seconds than the cheaper baseline
// our policy may spend on a trace: 10 %.
const CostSlack = 0.10

// RunAll replays tr through each contender, in order.
func RunAll(tr Trace, m Model, cs []Contender) ([]Result, error) {
	var out []Result
	for _, c := range cs {
		r, err := Run(tr, m, c)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Check tells whether the first result of one trace (ours) meets the
// target against the others (the baselines): a lower p99 wait than each,
// and no more than CostSlack more replica-seconds than the cheapest.
func Check(results []Result) error {
	if len(results) < 2 {
		return errors.New("sim: check needs our result and at least one baseline")
	}
	ours, cheapest := results[0], cheapest(results[1:])
	var errs []error
	for _, b := range results[1:] {
		if ours.P99 >= b.P99 {
			errs = append(errs, fmt.Errorf("%s: %s p99 wait %s is not below %s's %s",
				ours.Trace, ours.Policy, seconds(ours.P99), b.Policy, seconds(b.P99)))
		}
	}
	if limit := (1 + CostSlack) * cheapest.ReplicaSeconds; ours.ReplicaSeconds > limit {
		errs = append(errs, fmt.Errorf("%s: %s spends %.0f replica-seconds, %.2f× %s's %.0f (limit %.2f×)",
			ours.Trace, ours.Policy, ours.ReplicaSeconds, ours.ReplicaSeconds/cheapest.ReplicaSeconds,
			cheapest.Policy, cheapest.ReplicaSeconds, 1+CostSlack))
	}
	return errors.Join(errs...)
}

// CheckFrontier is the weaker claim for a trace where the target is out
// of reach of any policy of this model (diurnal: see the README): our
// policy waits less than the cheaper baseline and spends less than the
// faster one, so neither baseline is better on both counts.
func CheckFrontier(results []Result) error {
	if len(results) < 2 {
		return errors.New("sim: check needs our result and at least one baseline")
	}
	ours, cheap, fast := results[0], cheapest(results[1:]), results[1]
	for _, r := range results[2:] {
		if r.P99 < fast.P99 {
			fast = r
		}
	}
	var errs []error
	if ours.P99 >= cheap.P99 {
		errs = append(errs, fmt.Errorf("%s: %s p99 wait %s is not below the cheaper %s's %s",
			ours.Trace, ours.Policy, seconds(ours.P99), cheap.Policy, seconds(cheap.P99)))
	}
	if ours.ReplicaSeconds >= fast.ReplicaSeconds {
		errs = append(errs, fmt.Errorf("%s: %s spends %.0f replica-seconds, not less than the faster %s's %.0f",
			ours.Trace, ours.Policy, ours.ReplicaSeconds, fast.Policy, fast.ReplicaSeconds))
	}
	return errors.Join(errs...)
}

func cheapest(rs []Result) Result {
	c := rs[0]
	for _, r := range rs[1:] {
		if r.ReplicaSeconds < c.ReplicaSeconds {
			c = r
		}
	}
	return c
}

// Table writes a Markdown table of the results, one trace's results per
// element of runs, ours first in each. "× cheaper" divides the
// replica-seconds by those of the cheaper baseline on the same trace.
func Table(w io.Writer, runs [][]Result) error {
	_, err := fmt.Fprint(w, "| trace | policy | p50 wait | p99 wait | waited > 1 s | replica-s | × cheaper | absorb | scale events |\n"+
		"|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, rs := range runs {
		if len(rs) == 0 {
			continue
		}
		base := rs[0].ReplicaSeconds
		if len(rs) > 1 {
			base = cheapest(rs[1:]).ReplicaSeconds
		}
		for _, r := range rs {
			_, err = fmt.Fprintf(w, "| %s | %s | %s | %s | %d (%.1f %%) | %.0f | %.2f | %.1f s | %d |\n",
				r.Trace, r.Policy, seconds(r.P50), seconds(r.P99), r.Slow, 100*r.SlowShare(),
				r.ReplicaSeconds, r.ReplicaSeconds/base, r.Absorb.Seconds(), r.ScaleEvents)
			if err != nil {
				return err
			}
		}
	}
	return err
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3f s", d.Seconds())
}
