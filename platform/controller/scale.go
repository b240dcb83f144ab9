package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// Start failures are retried after a backoff doubling from startBackoff
// up to maxStartBackoff.
const (
	startBackoff    = 500 * time.Millisecond
	maxStartBackoff = 30 * time.Second
)

// The controller is the actuator of `sluice dev`: replicas are goroutines
// of this process.
var _ autoscaler.Actuator = (*Controller)(nil)

// Scale asks for n replicas of t. Replicas start or stop (drained) in the
// background; a replica that fails to start is retried with a backoff
// and reported by Size, never counted.
func (c *Controller) Scale(_ context.Context, t autoscaler.Target, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, dr, err := c.findLocked(t)
	if err != nil {
		return err
	}
	dr.want = max(n, 0)
	c.resizeLocked(t.App, dr)
	return nil
}

// resizeLocked starts a resize pass of dr unless one runs.
func (c *Controller) resizeLocked(app string, dr *depRun) {
	if !dr.resizing && dr.want != len(dr.replicas) {
		dr.resizing = true
		go c.resize(app, dr)
	}
}

// Size reports the replicas of t running here.
func (c *Controller) Size(_ context.Context, t autoscaler.Target) (autoscaler.Size, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, dr, err := c.findLocked(t)
	if err != nil {
		return autoscaler.Size{}, err
	}
	sz := autoscaler.Size{Current: len(dr.replicas)}
	for _, r := range dr.replicas {
		if r.rep.Stats().Partitions > 0 {
			sz.Ready++
		}
	}
	if dr.err != nil {
		sz.Problem = fmt.Sprintf("replica failed to start (%d times, next try in %v): %v",
			dr.failures, time.Until(dr.retryAt).Round(time.Millisecond), dr.err)
	}
	return sz, nil
}

// Ongoing reports the requests in flight over t's replicas.
func (c *Controller) Ongoing(t autoscaler.Target) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, dr, err := c.findLocked(t)
	if err != nil {
		return 0
	}
	var n int64
	for _, r := range dr.replicas {
		n += r.rep.Stats().Ongoing
	}
	return n
}

func (c *Controller) findLocked(t autoscaler.Target) (*appRun, *depRun, error) {
	a := c.apps[t.App]
	if a == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, t.App)
	}
	dr := a.deps[t.Deployment]
	if dr == nil {
		return nil, nil, fmt.Errorf("application %s has no deployment %s", t.App, t.Deployment)
	}
	return a, dr, nil
}

// resize starts or stops replicas of dr until it has what it wants, one
// at a time, and stops at a start failure (the next Scale after the
// backoff tries again).
func (c *Controller) resize(app string, dr *depRun) {
	c.mu.Lock()
	defer func() {
		dr.resizing = false
		c.mu.Unlock()
	}()
	for !dr.retired {
		a := c.apps[app]
		if a == nil || a.deps[dr.spec.Name] != dr {
			return // not applied yet or replaced; apply resizes what it keeps
		}
		have := len(dr.replicas)
		switch {
		case dr.want < have:
			// Stop (drain) in the background: a start asked for meanwhile
			// does not wait for it. Run waits for these before it returns.
			stopping := dr.replicas[dr.want:]
			dr.replicas = dr.replicas[:dr.want:dr.want]
			c.draining.Go(func() { stopAll(stopping) })
		case dr.want > have && !time.Now().Before(dr.retryAt):
			d := dr.spec
			c.mu.Unlock()
			rr, err := c.startReplica(context.Background(), a.spec, a.topo, d)
			c.mu.Lock()
			if err != nil {
				dr.err, dr.failures = err, dr.failures+1
				dr.retryAt = time.Now().Add(min(startBackoff<<min(dr.failures-1, 10), maxStartBackoff))
				c.cfg.Log.Error("replica not started", "app", a.spec.Name, "deployment", d.Name, "failures", dr.failures, "err", err)
				return
			}
			if dr.retired {
				c.mu.Unlock()
				stopAll([]*replicaRun{rr})
				c.mu.Lock()
				return
			}
			dr.replicas = append(dr.replicas, rr)
			dr.err, dr.failures = nil, 0
		default:
			return
		}
	}
}

// seedOffsets commits the log start of every input partition for a group
// that has committed nothing yet. A replica then finds a committed offset
// for each partition it is given and fetches them all at once; without
// one, a partition waits for an offset lookup and then for the fetch in
// flight, which delays the first answer of a deployment woken from zero.
// A group with members or commits is left alone.
func seedOffsets(ctx context.Context, adm *kadm.Client, group string, topics []string) error {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return err
	}
	if len(committed) > 0 {
		return nil
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	if err := starts.Error(); err != nil {
		return err
	}
	res, err := adm.CommitOffsets(ctx, group, starts.Offsets())
	if err != nil {
		return err
	}
	return res.Error()
}

// ScaleTargets is what the autoscaler scales of apps: every deployment,
// with its consumer group, input topics and options.
func ScaleTargets(n streams.Namer, apps []*spec.App) []autoscaler.Deployment {
	var out []autoscaler.Deployment
	for _, a := range apps {
		topo := Compile(n, a)
		for _, d := range a.Deployments {
			dt := topo.Deployments[d.Name]
			out = append(out, autoscaler.Deployment{
				Target: autoscaler.Target{App: a.Name, Deployment: d.Name},
				Group:  dt.Group, Inputs: dt.Inputs,
				Options: autoscaler.OptionsFor(d), Poll: time.Duration(d.Autoscaling.PollInterval),
			})
		}
	}
	return out
}

// PlacementRequests is what the deployments' replicas need, for the
// placer; with gpuOnly, CPU and memory are left out (the dev process's
// replicas are goroutines sharing it). A model deployment serving one
// named model prefers nodes that cache it.
func PlacementRequests(apps []*spec.App, gpuOnly bool) []placement.Request {
	var out []placement.Request
	for _, a := range apps {
		for _, d := range a.Deployments {
			r := d.Resources
			req := placement.Request{
				Target: autoscaler.Target{App: a.Name, Deployment: d.Name},
				Need:   placement.Need{GPU: r.GPU, GPUMemory: int64(r.GPUMemory)},
			}
			if !gpuOnly {
				req.Need.CPU, req.Need.Memory = r.CPU, int64(r.Memory)
			}
			if m := d.Model; m != nil && len(m.Names) == 1 {
				req.Model = m.Names[0]
			}
			out = append(out, req)
		}
	}
	return out
}
