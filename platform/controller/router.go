package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-serve/sluice/cel"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// router routes a deployment's outputs by the rules of its edges (see
// spec.Edge and spec.Deployment.Routing). Rules were checked at deploy
// time; Route fails only at run time (a missing field, a type error, the
// cost limit), with an error naming the rule.
type router struct {
	app, dep string
	mode     string
	splitKey *cel.Program
	edges    []routeEdge
	total    int // sum of the weights, for a split
}

type routeEdge struct {
	topic, path     string
	when, transform *cel.Program
	weight          int
	mirror          bool // outside the routing: taken whenever its when holds
}

// newRouter compiles the rules of d's edges; nil when its outputs simply
// go to every successor.
func newRouter(app string, d string, dt DeploymentTopics) (replicas.Router, error) {
	if !dt.Ruled() {
		return nil, nil
	}
	r := &router{app: app, dep: d, mode: dt.Routing}
	if dt.SplitKey != "" {
		p, err := cel.Compile(dt.SplitKey, cel.Transform)
		if err != nil {
			return nil, fmt.Errorf("deployment %s split_key: %w", d, err)
		}
		r.splitKey = p
	}
	for _, e := range dt.Routes {
		re := routeEdge{topic: e.Topic, path: e.Path, weight: e.Weight, mirror: e.Mirror}
		var err error
		if e.When != "" {
			if re.when, err = cel.Compile(e.When, cel.Condition); err != nil {
				return nil, fmt.Errorf("%s.when: %w", e.Path, err)
			}
		}
		if e.Transform != "" {
			if re.transform, err = cel.Compile(e.Transform, cel.Transform); err != nil {
				return nil, fmt.Errorf("%s.transform: %w", e.Path, err)
			}
		}
		if !e.Mirror {
			r.total += e.Weight
		}
		r.edges = append(r.edges, re)
	}
	return r, nil
}

// Route picks the edges an output takes and builds what each carries:
// the routing's choice among the edges that are not mirrors, then every
// mirror whose when holds.
func (r *router) Route(ctx context.Context, in *replicas.Input, out []byte, outType string) ([]replicas.Hop, error) {
	ci := ruleInput(r.app, r.dep, in)
	ci.Upstream, ci.UpstreamOutput, ci.OutputText = r.dep, out, isText(outType)
	hops, err := r.choose(ctx, ci, in, out)
	if err != nil {
		return nil, err
	}
	for i := range r.edges {
		e := &r.edges[i]
		if !e.mirror {
			continue
		}
		ok, err := e.holds(ctx, ci)
		if err != nil {
			return nil, err
		}
		if ok {
			h, err := e.hop(ctx, ci, out)
			if err != nil {
				return nil, err
			}
			h.Mirror = true
			hops = append(hops, h)
		}
	}
	return hops, nil
}

// choose applies the routing to the edges that are not mirrors.
func (r *router) choose(ctx context.Context, ci *cel.Input, in *replicas.Input, out []byte) ([]replicas.Hop, error) {
	switch r.mode {
	case spec.RouteSplit:
		if r.total == 0 {
			return nil, nil // only mirrors
		}
		e, err := r.pick(ctx, ci, in.Env.ID)
		if err != nil || e == nil {
			return nil, err
		}
		h, err := e.hop(ctx, ci, out)
		return []replicas.Hop{h}, err
	case spec.RouteFirst:
		for i := range r.edges {
			e := &r.edges[i]
			if e.mirror {
				continue
			}
			if ok, err := e.holds(ctx, ci); err != nil || !ok {
				if err != nil {
					return nil, err
				}
				continue
			}
			h, err := e.hop(ctx, ci, out)
			return []replicas.Hop{h}, err
		}
		return nil, nil
	}
	var hops []replicas.Hop
	for i := range r.edges {
		e := &r.edges[i]
		if e.mirror {
			continue
		}
		ok, err := e.holds(ctx, ci)
		if err != nil {
			return nil, err
		}
		if ok {
			h, err := e.hop(ctx, ci, out)
			if err != nil {
				return nil, err
			}
			hops = append(hops, h)
		}
	}
	return hops, nil
}

// pick chooses a split's edge: by the split key's bucket (sticky) or the
// request id's.
func (r *router) pick(ctx context.Context, ci *cel.Input, id string) (*routeEdge, error) {
	key := id
	if r.splitKey != nil {
		v, err := r.splitKey.String(ctx, ci)
		if err != nil {
			return nil, ruleError(fmt.Sprintf("deployments[%s].split_key", r.dep), err)
		}
		key = v
	}
	b := cel.Bucket(key, r.total)
	var last *routeEdge
	for i := range r.edges {
		if r.edges[i].mirror {
			continue
		}
		last = &r.edges[i]
		if b < r.edges[i].weight {
			return &r.edges[i], nil
		}
		b -= r.edges[i].weight
	}
	return last, nil
}

func (e *routeEdge) holds(ctx context.Context, ci *cel.Input) (bool, error) {
	if e.when == nil {
		return true, nil
	}
	ok, err := e.when.Bool(ctx, ci)
	if err != nil {
		return false, ruleError(e.path+".when", err)
	}
	return ok, nil
}

func (e *routeEdge) hop(ctx context.Context, ci *cel.Input, out []byte) (replicas.Hop, error) {
	if e.transform == nil {
		return replicas.Hop{Topic: e.topic, Value: out}, nil
	}
	v, err := e.transform.JSON(ctx, ci)
	if err != nil {
		return replicas.Hop{}, ruleError(e.path+".transform", err)
	}
	v, ct := payload(v)
	return replicas.Hop{Topic: e.topic, Value: v, ContentType: ct}, nil
}

// payload is how a rule's JSON value travels: a string raw, as text (the
// way a Go deployment's string output does), anything else as JSON.
func payload(js []byte) ([]byte, string) {
	if len(js) > 0 && js[0] == '"' {
		var s string
		if json.Unmarshal(js, &s) == nil {
			return []byte(s), serve.ContentText
		}
	}
	return js, serve.ContentJSON
}

// ruleError is a rule's failure at run time: the caller gets 400 naming
// the rule; an offline record goes to the dead-letter topic with it.
// A deadline passing during a rule is the request's deadline, not the
// rule's fault.
func ruleError(path string, err error) error {
	if !errors.Is(err, cel.ErrRule) && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return streams.Errorf(streams.CodeDeadlineExceeded, "deadline passed during rule %s", path)
	}
	return streams.Errorf(streams.CodeInvalidArgument, "rule %s failed: %v", path, err)
}

// ruleInput is what a rule sees of a record.
func ruleInput(app, dep string, in *replicas.Input) *cel.Input {
	return &cel.Input{ID: in.Env.ID, Model: in.Env.Model, App: app, Deployment: dep, Headers: in.Env.RequestHeaders(),
		Body: in.Value, BodyText: isText(in.Env.ContentType)}
}

// isText reports whether a payload of this content type is plain text.
func isText(contentType string) bool { return strings.HasPrefix(contentType, "text/plain") }

// celHandler runs a deployment of kind cel: its output is its transform
// of the input, or the input; its edges' rules route it.
type celHandler struct {
	app, dep  string
	transform *cel.Program
}

func newCELHandler(app string, d spec.Deployment) (replicas.Handler, error) {
	h := &celHandler{app: app, dep: d.Name}
	if d.Transform != "" {
		p, err := cel.Compile(d.Transform, cel.Transform)
		if err != nil {
			return nil, fmt.Errorf("deployment %s transform: %w", d.Name, err)
		}
		h.transform = p
	}
	return h, nil
}

func (h *celHandler) Handle(ctx context.Context, in *replicas.Input, out replicas.Output) error {
	if h.transform == nil {
		return out.Emit(in.Value, in.Env.ContentType)
	}
	v, err := h.transform.JSON(ctx, ruleInput(h.app, h.dep, in))
	if err != nil {
		return ruleError("deployments["+h.dep+"].transform", err)
	}
	return out.Emit(payload(v))
}
