package spec

import (
	"math"
	"time"

	"gopkg.in/yaml.v3"
)

// Autoscaling defaults. The target lag defaults to what a replica holds
// in flight (its max_ongoing_requests): lag counts records in flight and
// records queued, so more than that per replica is a queue.
const (
	DefaultActivationLag    = 1
	DefaultScaleUpDelay     = Duration(3 * time.Second)
	DefaultScaleDownDelay   = Duration(30 * time.Second)
	DefaultScaleToZeroAfter = Duration(60 * time.Second)
	DefaultPollInterval     = Duration(500 * time.Millisecond)

	minPollInterval = Duration(50 * time.Millisecond)
	maxPollInterval = Duration(30 * time.Second)
	maxScaleDelay   = Duration(24 * time.Hour)
)

// Autoscaling tunes how the autoscaler sizes a deployment between
// replicas.min and replicas.max. It acts only when min < max.
//
// Lag is what the deployment's consumer group has not yet done: records
// queued or in flight on its input topics, counted from each partition's
// log start (deleted records never count) and without transaction markers.
type Autoscaling struct {
	// TargetLagPerReplica is the lag one replica should carry; desired
	// replicas = ceil(lag / target). Default: max_ongoing_requests.
	TargetLagPerReplica float64 `json:"target_lag_per_replica,omitempty"`
	// TargetOngoingRequests, when > 0, also asks for
	// ceil(in-flight requests / target) replicas, where replicas report
	// what they have in flight. Default 0: lag alone (it counts requests
	// in flight too).
	TargetOngoingRequests float64 `json:"target_ongoing_requests,omitempty"`
	// ActivationLag is the lag that wakes a deployment at zero. Default 1.
	ActivationLag int64 `json:"activation_lag,omitempty"`
	// ScaleUpDelay is how long a higher demand must last before scaling
	// up (to the least demand seen over it). Default 3s. A burst, twice
	// the ready capacity, scales up at once.
	ScaleUpDelay Duration `json:"scale_up_delay"`
	// ScaleDownDelay is the stable window: the deployment shrinks to the
	// highest demand seen over it. Default 30s.
	ScaleDownDelay Duration `json:"scale_down_delay"`
	// ScaleToZeroAfter is how long a deployment with replicas.min 0 must
	// have no lag and nothing in flight before it goes to zero. Default 60s.
	ScaleToZeroAfter Duration `json:"scale_to_zero_after"`
	// PollInterval is how often lag is read. Default 500ms.
	PollInterval Duration `json:"poll_interval"`
	// AddPartitions lets the autoscaler add partitions to the deployment's
	// input topics when demand asks for more replicas than partitions (up
	// to replicas.max). Records of one key may then go to a new partition:
	// leave it off where per-key order matters.
	AddPartitions bool `json:"add_partitions,omitempty"`
}

// Autoscales reports whether the autoscaler may change the size of d.
func (d *Deployment) Autoscales() bool { return d.Replicas.Min < d.Replicas.Max }

func (d *decoder) autoscaling(n *yaml.Node, path string, a *Autoscaling) {
	keys := []string{"target_lag_per_replica", "target_ongoing_requests", "activation_lag", "scale_up_delay",
		"scale_down_delay", "scale_to_zero_after", "poll_interval", "add_partitions"}
	d.fields(n, path, keys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "target_lag_per_replica":
			d.float(v, p, &a.TargetLagPerReplica)
		case "target_ongoing_requests":
			d.float(v, p, &a.TargetOngoingRequests)
		case "activation_lag":
			if i, ok := d.integer(v, p, math.MinInt64, math.MaxInt64); ok {
				a.ActivationLag = i
			}
		case "scale_up_delay":
			d.duration(v, p, &a.ScaleUpDelay)
		case "scale_down_delay":
			d.duration(v, p, &a.ScaleDownDelay)
		case "scale_to_zero_after":
			d.duration(v, p, &a.ScaleToZeroAfter)
		case "poll_interval":
			d.duration(v, p, &a.PollInterval)
		case "add_partitions":
			d.bool(v, p, &a.AddPartitions)
		}
	})
}

// defaults fills unset fields; maxOngoing is the deployment's (defaulted)
// max_ongoing_requests.
func (a *Autoscaling) defaults(set presence, path string, maxOngoing int) {
	if !set.has(path+".target_lag_per_replica", a.TargetLagPerReplica != 0) {
		a.TargetLagPerReplica = float64(max(1, maxOngoing))
	}
	if !set.has(path+".scale_up_delay", a.ScaleUpDelay != 0) {
		a.ScaleUpDelay = DefaultScaleUpDelay
	}
	if !set.has(path+".activation_lag", a.ActivationLag != 0) {
		a.ActivationLag = DefaultActivationLag
	}
	if !set.has(path+".scale_down_delay", a.ScaleDownDelay != 0) {
		a.ScaleDownDelay = DefaultScaleDownDelay
	}
	if !set.has(path+".scale_to_zero_after", a.ScaleToZeroAfter != 0) {
		a.ScaleToZeroAfter = DefaultScaleToZeroAfter
	}
	if !set.has(path+".poll_interval", a.PollInterval != 0) {
		a.PollInterval = DefaultPollInterval
	}
}

func (v *validator) autoscaling(p string, a Autoscaling) {
	if x := a.TargetLagPerReplica; math.IsNaN(x) || math.IsInf(x, 0) || x <= 0 {
		v.add(p+".target_lag_per_replica", "must be a number > 0, got %v", x)
	}
	v.nonNegative(p+".target_ongoing_requests", a.TargetOngoingRequests)
	if a.ActivationLag < 1 {
		v.add(p+".activation_lag", "must be >= 1 (the lag that wakes a deployment at zero), got %d", a.ActivationLag)
	}
	v.delay(p+".scale_up_delay", a.ScaleUpDelay)
	v.delay(p+".scale_down_delay", a.ScaleDownDelay)
	v.delay(p+".scale_to_zero_after", a.ScaleToZeroAfter)
	if a.PollInterval < minPollInterval || a.PollInterval > maxPollInterval {
		v.add(p+".poll_interval", "must be between %v and %v, got %v", minPollInterval, maxPollInterval, a.PollInterval)
	}
}

func (v *validator) delay(p string, d Duration) {
	if d < 0 || d > maxScaleDelay {
		v.add(p, "must be between 0s and %v, got %v", maxScaleDelay, d)
	}
}
