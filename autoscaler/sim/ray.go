package sim

import (
	"math"
	"time"
)

// RayOptions are the knobs of Ray Serve's default autoscaling policy
// (ray.serve.autoscaling_policy, replica_queue_length_autoscaling_policy)
// and of how its metrics reach the controller.
type RayOptions struct {
	TargetOngoing  float64       // target_ongoing_requests per replica
	Factor         float64       // upscaling_factor / downscaling_factor (smoothing)
	UpscaleDelay   time.Duration // upscale_delay_s
	DownscaleDelay time.Duration // downscale_delay_s, also for 1→0 (downscale_to_zero_delay_s unset)

	RecordInterval  time.Duration // how often a handle samples its ongoing requests
	MetricsInterval time.Duration // how often a handle pushes them to the controller
	LookBack        time.Duration // look_back_period_s: what a push averages over
	ControlLoop     time.Duration // the controller's loop: one decision per loop
}

// DefaultRay is Ray Serve at its defaults:
//
//   - AutoscalingConfig: target_ongoing_requests 2, upscale_delay_s 30,
//     downscale_delay_s 600, smoothing / upscaling / downscaling factor 1,
//     metrics_interval_s 10, look_back_period_s 30.
//   - constants.py: CONTROL_LOOP_INTERVAL_S 0.1; handles record metrics
//     every RAY_SERVE_HANDLE_AUTOSCALING_METRIC_RECORD_INTERVAL_S (0.5 s)
//     and push every RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S
//     (10 s); metrics are collected at the handles by default
//     (RAY_SERVE_COLLECT_AUTOSCALING_METRICS_ON_HANDLE), which count
//     requests queued at the handle plus those running on replicas.
func DefaultRay() RayOptions {
	return RayOptions{
		TargetOngoing: 2, Factor: 1, UpscaleDelay: 30 * time.Second, DownscaleDelay: 600 * time.Second,
		RecordInterval: 500 * time.Millisecond, MetricsInterval: 10 * time.Second,
		LookBack: 30 * time.Second, ControlLoop: 100 * time.Millisecond,
	}
}

// ray models Ray Serve's controller and one handle in front of the
// deployment. What it reproduces, from autoscaling_policy.py,
// autoscaling_state.py and router.py:
//
//   - The handle samples ongoing requests (queued + running) every
//     RecordInterval and pushes their average over LookBack every
//     MetricsInterval; the controller decides on the last push.
//   - Cold start: a request queued at a handle while the deployment has no
//     replicas is pushed at once (should_send_scaled_to_zero_optimized_push;
//     we push the queued count itself), and with no running replicas the
//     policy skips its delays: any request asks for
//     max(ceil(1 × upscaling_factor), target) replicas
//     (_get_cold_start_scale_up_replicas).
//   - Otherwise desired = ceil(running + factor × (total/target_ongoing −
//     running)) (_core_replica_queue_length_policy then
//     _apply_scaling_factors), i.e. ceil(current × (1 + (ongoing /
//     (target × current) − 1) × factor)), bounded by min and max.
//   - Delays (_apply_delay_logic): the controller moves to desired only
//     after deciding the same direction on more than delay/loop
//     consecutive loops; a scale down that is not 1→0 goes to at least 1,
//     so reaching zero from N takes two downscale delays.
type ray struct {
	o        RayOptions
	min, max int

	samples   []timed // (time, ongoing) within LookBack
	reported  float64 // the controller's view of ongoing requests
	target    int     // target_num_replicas
	counter   int     // the decision counter: > 0 up, < 0 down
	nextRec   time.Duration
	nextPush  time.Duration
	nextLoop  time.Duration
	upLoops   int
	downLoops int
}

// NewRay models Ray Serve with o scaling a deployment of m.
func NewRay(o RayOptions, m Model) Policy {
	return &ray{
		o: o, min: m.Min, max: m.Max, target: m.Initial,
		nextRec: o.RecordInterval, nextPush: o.MetricsInterval, nextLoop: o.ControlLoop,
		// int(delay_s / CONTROL_LOOP_INTERVAL_S), in floating point as Ray does
		upLoops:   int(o.UpscaleDelay.Seconds() / o.ControlLoop.Seconds()),
		downLoops: int(o.DownscaleDelay.Seconds() / o.ControlLoop.Seconds()),
	}
}

func (r *ray) Tick(v View) int {
	now := v.Now
	r.target = v.Current
	if now >= r.nextRec {
		r.nextRec = next(r.nextRec, now, r.o.RecordInterval)
		r.samples = append(r.samples, timed{now, v.Lag()})
		for len(r.samples) > 0 && now-r.samples[0].at >= r.o.LookBack {
			r.samples = r.samples[1:]
		}
	}
	if now >= r.nextPush {
		r.nextPush = next(r.nextPush, now, r.o.MetricsInterval)
		sum := 0
		for _, s := range r.samples {
			sum += s.n
		}
		r.reported = 0
		if len(r.samples) > 0 {
			r.reported = float64(sum) / float64(len(r.samples))
		}
	}
	if v.Current == 0 && v.Arrived > 0 {
		r.reported = max(r.reported, float64(v.Queued))
	}
	if now < r.nextLoop {
		return r.target
	}
	r.nextLoop = next(r.nextLoop, now, r.o.ControlLoop)
	return r.decide(v.Ready)
}

// decide is one pass of the controller's loop.
func (r *ray) decide(running int) int {
	if running == 0 { // the cold start path: no delays
		if r.reported > 0 {
			return max(int(math.Ceil(r.o.Factor)), r.target)
		}
		return r.target
	}
	raw := r.reported / r.o.TargetOngoing
	desired := int(math.Ceil(float64(running) + r.o.Factor*(raw-float64(running))))
	if int(math.Ceil(raw)) < running && desired == running {
		desired-- // a small factor must not get stuck above the target
	}
	desired = min(max(desired, r.min), r.max)

	switch {
	case desired > r.target:
		r.counter = max(r.counter, 0) + 1
		if r.counter > r.upLoops {
			r.counter = 0
			return desired
		}
	case desired < r.target:
		r.counter = min(r.counter, 0) - 1
		if r.target != 1 {
			desired = max(desired, 1) // only 1→0 goes to zero
		}
		if r.counter < -r.downLoops {
			r.counter = 0
			return desired
		}
	default:
		r.counter = 0
	}
	return r.target
}
