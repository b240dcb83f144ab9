package spec

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/sluice-serve/sluice/cel"
)

// KindCEL is the kind of a deployment that only routes and transforms:
// its output is its transform of the input (or the input itself), and its
// edges' rules say where it goes. It runs no code of its own.
const KindCEL = "cel"

// Routing modes of a deployment's outgoing dataflow edges.
const (
	RouteAll   = "all"   // every edge whose `when` holds (fan-out); the default
	RouteFirst = "first" // the first edge whose `when` holds, in order; an edge without `when` is the default branch
	RouteSplit = "split" // one edge, chosen by weight: by split_key (sticky) or by request id
)

// Rule is a gateway rule of an application: a request to its route whose
// `when` holds goes to another application (a canary, a new version) or,
// for a model, to a version. Rules are tried in order; none matching
// leaves the request as it was.
type Rule struct {
	When    string `json:"when,omitempty"`
	App     string `json:"app,omitempty"`
	Version string `json:"version,omitempty"`
}

func (d *decoder) rule(n *yaml.Node, path string) Rule {
	var r Rule
	d.fields(n, path, []string{"when", "app", "version"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "when":
			d.str(v, p, &r.When)
		case "app":
			d.str(v, p, &r.App)
		case "version":
			d.str(v, p, &r.Version)
		}
	})
	return r
}

// routing checks a deployment's routing fields.
func (v *validator) routing(p string, d *Deployment) {
	switch d.Routing {
	case "", RouteAll, RouteFirst:
		if d.SplitKey != "" {
			v.add(p+".split_key", "is only for routing %q", RouteSplit)
		}
	case RouteSplit:
		if d.SplitKey != "" {
			v.cel(p+".split_key", d.SplitKey, cel.Transform)
		}
	default:
		v.add(p+".routing", "unknown routing %q: use %q (every matching edge), %q (the first) or %q (one by weight)", d.Routing, RouteAll, RouteFirst, RouteSplit)
	}
	if d.Kind != KindCEL {
		if d.Transform != "" {
			v.add(p+".transform", "is only for deployments of kind %q (an edge takes a transform too)", KindCEL)
		}
		return
	}
	v.noCode(p, d, "runs its rules", "does not batch")
	if d.Transform != "" {
		v.cel(p+".transform", d.Transform, cel.Transform)
	}
}

// edgeRules checks the rules of edge i, given the routing of its source.
func (v *validator) edgeRules(i int, e Edge) {
	p := indexPath("edges", i)
	from, ok := v.index[e.From]
	routing := RouteAll
	if ok && v.app.Deployments[from].Routing != "" {
		routing = v.app.Deployments[from].Routing
	}
	if e.When != "" {
		if routing == RouteSplit && !e.Mirror {
			v.add(p+".when", "the edges of a split deployment (%s) are chosen by weight, not by when", e.From)
		} else {
			v.cel(p+".when", e.When, cel.Condition)
		}
	}
	if e.Transform != "" {
		v.cel(p+".transform", e.Transform, cel.Transform)
	}
	switch {
	case e.Mirror && e.Weight != 0:
		v.add(p+".weight", "a mirror stands outside %s's routing and takes every output its when lets through: it has no weight", e.From)
	case e.Mirror:
	case routing == RouteSplit && e.Weight <= 0:
		v.add(p+".weight", "an edge of a split deployment (%s) needs a weight > 0, got %d", e.From, e.Weight)
	case routing != RouteSplit && e.Weight != 0:
		v.add(p+".weight", "is only for the edges of a deployment with routing %q (%s has %q)", RouteSplit, e.From, routing)
	}
}

func (v *validator) rules() {
	for i, r := range v.app.Rules {
		p := indexPath("rules", i)
		if r.App == "" && r.Version == "" {
			v.add(p, "a rule needs an app or a version to send the request to")
		}
		if r.App != "" {
			v.name(p+".app", r.App)
		}
		if r.When != "" {
			v.cel(p+".when", r.When, cel.Condition)
		}
	}
}

// cel compiles one rule, reporting CEL's message at the field.
func (v *validator) cel(p, expr string, kind cel.Kind) {
	if _, err := cel.Compile(expr, kind); err != nil {
		var ce *cel.CompileError
		if errors.As(err, &ce) {
			v.add(p, "%s", ce.Error())
			return
		}
		v.add(p, "%v", err)
	}
}

// Locate prefixes a field path with where the YAML set it ("file:line:col:
// path"), for errors found after decoding; an app built in Go has only
// the path.
func (a *App) Locate(path string) string {
	if pos := a.Position(path); pos != "" {
		return pos + ": " + path
	}
	return path
}

// Position is where the YAML set field path, or the closest enclosing
// field that has a place: "file:line:col", or "" for an app built in Go.
func (a *App) Position(path string) string {
	if a.Source == nil {
		return ""
	}
	if line, col := a.Source.position(path); line > 0 {
		return fmt.Sprintf("%s:%d:%d", a.Source.File, line, col)
	}
	return ""
}

// DescribeRule names a rule for runtime errors: its field and text.
func DescribeRule(path, expr string) string { return fmt.Sprintf("%s %q", path, expr) }
