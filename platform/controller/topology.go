// Package controller keeps applications on Kafka and reconciles them into
// running replicas: it compiles each spec into topics and consumer groups,
// creates what is missing, and starts, rolls and stops replicas.
package controller

import (
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// Topology is an application compiled to Kafka names: one topic per edge,
// an ingress, output and dead-letter topic per application, one consumer
// group per deployment. A Bind graph and the same graph in YAML compile to
// the same Topology.
type Topology struct {
	Ingress, Output, DeadLetter string
	Partitions                  int32
	Edges                       []EdgeTopic // sorted by topic
	Deployments                 map[string]DeploymentTopics
}

// EdgeTopic is the topic of one edge.
type EdgeTopic struct {
	From, To, Topic string
	Handle          bool // a handle edge (calls) rather than a dataflow edge
}

// DeploymentTopics is what one deployment's replicas read and write.
type DeploymentTopics struct {
	Group      string
	Inputs     []string // sorted
	Successors []string // dataflow edge topics, sorted
	// Routes are the dataflow edges out of the deployment in the spec's
	// order, with their rules; Routing and SplitKey say how they are used.
	Routes   []RouteEdge
	Routing  string
	SplitKey string
	// Join, on a deployment with several incoming dataflow edges, says
	// how their inputs combine (spec.Join); nil elsewhere. Omitted when
	// nil, so that revisions of deployments without one do not change.
	Join *spec.Join `json:",omitempty"`
	// ExactlyOnce: the replicas commit their outputs and input offsets
	// in one transaction (spec.DeliveryExactlyOnce). Omitted when false,
	// so that revisions of at-least-once deployments do not change.
	ExactlyOnce bool `json:",omitempty"`
}

// RouteEdge is one dataflow edge with its rules.
type RouteEdge struct {
	To, Topic       string
	When, Transform string
	Weight          int
	Path            string // "edges[i]", for errors
	// Mirror: a copy outside the routing, whose answers never reach the
	// caller (spec.Edge.Mirror).
	Mirror bool `json:",omitempty"`
}

// Ruled reports whether the deployment's outputs need a router: an edge
// with a rule, or a routing other than all.
func (d DeploymentTopics) Ruled() bool {
	if d.Routing != "" && d.Routing != spec.RouteAll {
		return true
	}
	for _, r := range d.Routes {
		if r.When != "" || r.Transform != "" || r.Mirror {
			return true
		}
	}
	return false
}

// Compile names every topic and group of app.
func Compile(n streams.Namer, app *spec.App) *Topology {
	t := &Topology{
		Ingress:     n.Ingress(app.Name),
		Output:      n.Output(app.Name),
		DeadLetter:  n.DeadLetter(app.Name),
		Partitions:  app.Partitions,
		Deployments: make(map[string]DeploymentTopics, len(app.Deployments)),
	}
	for _, d := range app.Deployments {
		dt := DeploymentTopics{Group: n.Group(app.Name, d.Name), Routing: d.Routing, SplitKey: d.SplitKey, Join: d.Join.Clone(), ExactlyOnce: app.ExactlyOnce()}
		if d.Name == app.Ingress {
			dt.Inputs = append(dt.Inputs, t.Ingress)
		}
		t.Deployments[d.Name] = dt
	}
	add := func(from, to string, handle bool) {
		topic := n.Edge(app.Name, from, to)
		for _, e := range t.Edges {
			if e.Topic == topic {
				return
			}
		}
		t.Edges = append(t.Edges, EdgeTopic{From: from, To: to, Topic: topic, Handle: handle})
		dt := t.Deployments[to]
		dt.Inputs = append(dt.Inputs, topic)
		t.Deployments[to] = dt
		if !handle {
			ft := t.Deployments[from]
			ft.Successors = append(ft.Successors, topic)
			t.Deployments[from] = ft
		}
	}
	for _, d := range app.Deployments {
		for _, a := range d.Args {
			if a.Handle != "" {
				add(d.Name, a.Handle, true)
			}
		}
	}
	for i, e := range app.Edges {
		add(e.From, e.To, false)
		dt := t.Deployments[e.From]
		dt.Routes = append(dt.Routes, RouteEdge{To: e.To, Topic: n.Edge(app.Name, e.From, e.To),
			When: e.When, Transform: e.Transform, Weight: e.Weight, Mirror: e.Mirror, Path: "edges[" + strconv.Itoa(i) + "]"})
		t.Deployments[e.From] = dt
	}
	slices.SortFunc(t.Edges, func(a, b EdgeTopic) int { return strings.Compare(a.Topic, b.Topic) })
	for name, dt := range t.Deployments {
		slices.Sort(dt.Inputs)
		slices.Sort(dt.Successors)
		t.Deployments[name] = dt
	}
	return t
}

// Topics lists every topic of the application with its partition count
// and retention (streams.DataTopic).
func (t *Topology) Topics() []streams.TopicSpec {
	ts := []streams.TopicSpec{
		streams.DataTopic(t.Ingress, t.Partitions),
		streams.DataTopic(t.Output, t.Partitions),
		streams.DataTopic(t.DeadLetter, t.Partitions),
	}
	for _, e := range t.Edges {
		ts = append(ts, streams.DataTopic(e.Topic, t.Partitions))
	}
	return ts
}
