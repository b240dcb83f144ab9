package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// ModelBuilder builds the handler of one replica of a model deployment.
type ModelBuilder interface {
	Build(ctx context.Context, app *spec.App, d spec.Deployment) (replicas.Handler, error)
}

// ErrNoModelServing is returned for a model deployment in a process that
// was given no model registry.
var ErrNoModelServing = errors.New("this process has no model registry to serve model deployments from")

// BuildHandler builds the handler of one replica of deployment d: user
// code from the serve registry, or the model server for kind model.
func BuildHandler(ctx context.Context, reg *serve.Registry, mb ModelBuilder, app *spec.App, d spec.Deployment, caller *streams.Caller, namer streams.Namer) (replicas.Handler, error) {
	switch d.Kind {
	case spec.KindCEL:
		return newCELHandler(app.Name, d)
	case "":
		return reg.Build(ctx, app, d.Name, caller, namer)
	}
	if mb == nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name, ErrNoModelServing)
	}
	return mb.Build(ctx, app, d)
}

// closeHandler releases what a stopped replica's handler holds (a model
// server's loaded models), when it has anything to release.
func closeHandler(h replicas.Handler) {
	if c, ok := h.(io.Closer); ok {
		_ = c.Close()
	}
}

// ReplicaConfig is the configuration of replica instance of deployment d
// of an applied application; `sluice dev` and `sluice replica` both use
// it. It fails only when the rules of d's edges do not compile.
func ReplicaConfig(brokers []string, namer streams.Namer, app appstore.Applied, d spec.Deployment, instance string, drain time.Duration, log *slog.Logger) (replicas.Config, error) {
	topo := Compile(namer, app.Spec)
	dt := topo.Deployments[d.Name]
	router, err := newRouter(app.Spec.Name, d.Name, dt)
	if err != nil {
		return replicas.Config{}, err
	}
	rev := Revision(topo, d)
	return replicas.Config{
		Join:         joinConfig(topo, d.Name, dt),
		StampIngress: stampIngress(topo, d.Name, app.Spec.Ingress),
		Router:       router,
		Brokers:      brokers,
		Group:        dt.Group,
		Topics:       dt.Inputs,
		Successors:   dt.Successors,
		Output:       topo.Output,
		DeadLetter:   topo.DeadLetter,
		Deployment:   d.Name,
		App:          app.Spec.Name,
		Instance:     instance,
		Revision:     rev,
		Generation:   app.Generation,
		MaxOngoing:   d.MaxOngoingRequests,
		Ordered:      d.Ordered,
		ExactlyOnce:  dt.ExactlyOnce,
		DrainTimeout: drain,
		Log:          log.With("deployment", d.Name, "revision", rev),
	}, nil
}

// joinConfig is what a join deployment's replicas need: its join and the
// upstream deployment of each incoming dataflow edge topic; nil for a
// deployment without a join.
func joinConfig(topo *Topology, d string, dt DeploymentTopics) *replicas.JoinConfig {
	if dt.Join == nil {
		return nil
	}
	jc := &replicas.JoinConfig{Type: dt.Join.Type, Window: time.Duration(dt.Join.Window), Trigger: dt.Join.Trigger, Sources: map[string]string{}, Merge: tensorMerge(dt.Join)}
	for _, e := range topo.Edges {
		if e.To == d && !e.Handle {
			jc.Sources[e.Topic] = e.From
		}
	}
	return jc
}

// stampIngress is the ingress topic for the ingress deployment of a graph
// with a join (replicas.Config.StampIngress), else "".
func stampIngress(topo *Topology, d, ingress string) string {
	if d != ingress {
		return ""
	}
	for _, dt := range topo.Deployments {
		if dt.Join != nil {
			return topo.Ingress
		}
	}
	return ""
}
