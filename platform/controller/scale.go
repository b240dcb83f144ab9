package controller

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

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
// placer, with the revision they run; with gpuOnly, CPU and memory are left out (the dev process's
// replicas are goroutines sharing it). A model deployment serving one
// named model prefers nodes that cache it.
func PlacementRequests(n streams.Namer, apps []*spec.App, gpuOnly bool) []placement.Request {
	var out []placement.Request
	for _, a := range apps {
		topo := Compile(n, a)
		for _, d := range a.Deployments {
			r := d.Resources
			req := placement.Request{
				Target:   autoscaler.Target{App: a.Name, Deployment: d.Name},
				Need:     placement.Need{GPU: r.GPU, GPUMemory: int64(r.GPUMemory)},
				Revision: Revision(topo, d),
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
