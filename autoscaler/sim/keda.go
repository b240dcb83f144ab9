package sim

import (
	"math"
	"time"
)

// KEDAOptions are the knobs of a KEDA ScaledObject with a Kafka trigger
// and of the HorizontalPodAutoscaler that KEDA creates for it.
type KEDAOptions struct {
	LagThreshold    float64       // kafka trigger lagThreshold: lag one replica should carry
	ActivationLag   float64       // kafka trigger activationLagThreshold: active when lag > it
	PollingInterval time.Duration // how often the operator checks activity (0↔1)
	CooldownPeriod  time.Duration // inactive this long since the last active check: 1→0

	HPASyncPeriod       time.Duration // how often the HPA reads the metric (1↔N)
	Tolerance           float64       // the HPA keeps the size while |ratio − 1| ≤ it
	DownStabilization   time.Duration // scale down to the highest recommendation within it
	UpPods, UpPercent   int           // scale up by at most max(+UpPods, +UpPercent %) ...
	UpPeriod            time.Duration // ... per UpPeriod
	DisableUpRateLimits bool          // lift the UpPods/UpPercent limits (for comparison)
}

// DefaultKEDA is KEDA at its documented defaults, with the HPA's:
//
//   - Kafka scaler (keda.sh/docs/latest/scalers/apache-kafka):
//     lagThreshold 10, activationLagThreshold 0; the lag reported is
//     capped at partitions × lagThreshold (allowIdleConsumers false), so
//     no more replicas than partitions.
//   - ScaledObject (keda.sh/docs/latest/reference/scaledobject-spec):
//     pollingInterval 30 s, cooldownPeriod 300 s. "KEDA cooldownPeriod only
//     applies when scaling to 0; scaling from 1 to N replicas is handled by
//     the Kubernetes Horizontal Pod Autoscaler"; activation (0↔1) is the
//     operator's, when the metric is greater than the activation value
//     (keda.sh/docs/latest/concepts/scaling-deployments, "Activating and
//     Scaling thresholds").
//   - The HPA asks KEDA's metrics server for the metric every
//     --horizontal-pod-autoscaler-sync-period (15 s), and the metrics server
//     queries the scaler on each request unless useCachedMetrics is set
//     (default false; "Caching Metrics" on the same page). So 1↔N reacts
//     every 15 s on a live lag, 0↔1 every 30 s.
//   - HPA behavior when none is given (autoscaling/v2
//     HorizontalPodAutoscalerBehavior): scale down with a 300 s
//     stabilization window ("the highest recommendation for the last
//     300sec is used"); scale up with no stabilization, by at most the
//     higher of 4 pods or 100 % per 15 s: the API reference says "per 60
//     seconds", but the defaults the controller applies
//     (pkg/apis/autoscaling/v2/defaults.go, scaleUpPeriod) use 15 s, and
//     that is what runs. Tolerance 0.1 (the
//     --horizontal-pod-autoscaler-tolerance default). KEDA's Kafka metric is
//     an AverageValue target, so the HPA wants ceil(lag / lagThreshold).
func DefaultKEDA() KEDAOptions {
	return KEDAOptions{
		LagThreshold: 10, ActivationLag: 0,
		PollingInterval: 30 * time.Second, CooldownPeriod: 300 * time.Second,
		HPASyncPeriod: 15 * time.Second, Tolerance: 0.1, DownStabilization: 300 * time.Second,
		UpPods: 4, UpPercent: 100, UpPeriod: 15 * time.Second,
	}
}

type keda struct {
	o          KEDAOptions
	min, max   int // the HPA's: minReplicas is max(minReplicaCount, 1)
	partitions int

	nextPoll, nextSync time.Duration
	lastActive         time.Duration
	recs               []timed // the HPA's recommendations
	ups                []timed // the HPA's scale-ups: replicas added
}

type timed struct {
	at time.Duration
	n  int
}

// NewKEDA models KEDA with o scaling a deployment of m. The initial
// replicas count as just active: the cooldown starts at 0.
func NewKEDA(o KEDAOptions, m Model) Policy {
	return &keda{
		o: o, min: max(m.Min, 1), max: m.Max, partitions: m.Partitions,
		nextPoll: o.PollingInterval, nextSync: o.HPASyncPeriod,
	}
}

func (k *keda) Tick(v View) int {
	now, n := v.Now, v.Current
	if now >= k.nextPoll {
		k.nextPoll = next(k.nextPoll, now, k.o.PollingInterval)
		active := float64(v.Lag()) > k.o.ActivationLag
		if active {
			k.lastActive = now
		}
		switch {
		case n == 0 && active:
			return max(k.min, 1)
		case n > 0 && !active && now-k.lastActive >= k.o.CooldownPeriod:
			return 0
		}
	}
	if now >= k.nextSync {
		k.nextSync = next(k.nextSync, now, k.o.HPASyncPeriod)
		if n > 0 { // the HPA does not act on a deployment at zero
			n = k.hpa(now, n, v.Lag())
		}
	}
	return n
}

// hpa is one HPA sync: the recommendation from the metric, stabilized,
// then bounded and rate limited.
func (k *keda) hpa(now time.Duration, n, lag int) int {
	metric := min(float64(lag), float64(k.partitions)*k.o.LagThreshold)
	desired := n
	if ratio := metric / (k.o.LagThreshold * float64(n)); math.Abs(ratio-1) > k.o.Tolerance {
		desired = int(math.Ceil(metric / k.o.LagThreshold))
	}

	// Stabilization: up takes the current recommendation (no window),
	// down the highest of the window's.
	down := desired
	keep := k.recs[:0]
	for _, r := range k.recs {
		if now-r.at < k.o.DownStabilization {
			keep = append(keep, r)
			down = max(down, r.n)
		}
	}
	k.recs = append(keep, timed{now, desired})
	want := n
	switch {
	case desired > n:
		want = desired
	case down < n:
		want = down
	}
	want = min(max(want, k.min), k.max)

	if want > n && !k.o.DisableUpRateLimits {
		added := 0
		keep := k.ups[:0]
		for _, u := range k.ups {
			if now-u.at < k.o.UpPeriod {
				keep = append(keep, u)
				added += u.n
			}
		}
		k.ups = keep
		start := n - added
		limit := max(start+k.o.UpPods, start+int(math.Ceil(float64(start)*float64(k.o.UpPercent)/100)))
		want = min(want, max(limit, n))
	}
	if want > n {
		k.ups = append(k.ups, timed{now, want - n})
	}
	return want
}

// next is the first tick of a period-long cadence after now.
func next(at, now, period time.Duration) time.Duration {
	for at <= now {
		at += period
	}
	return at
}
