package spec

import (
	"fmt"
	"slices"
	"strings"
)

// TensorCatalog tells, at deploy, what the model deployments upstream of
// a tensor join answer with: the registry's models and their signatures.
type TensorCatalog interface {
	// ModelsServed lists the models d, of kind model, serves now.
	ModelsServed(d *Deployment) []string
	// Outputs is the output tensor names of the version of model that d
	// answers a request naming no version with, and that version; ok
	// false when the registry does not know it.
	Outputs(d *Deployment, model string) (names []string, version string, ok bool)
}

// CheckTensorJoins refuses, at deploy, a join whose merged inference
// request would take one tensor name from two upstreams: a join that
// merges tensors by name (not join.tensors: prefix) whose upstreams'
// outputs are known to share a name. An upstream's outputs are known when
// it declares them (outputs:), or when it is a model deployment whose
// models the catalog (nil: none) has signatures of. Two model deployments
// that both serve a model clash whatever its signature: a request names
// one model for the whole graph, so both answer with that model's
// outputs. Outputs not known at deploy are merged, and a clash refused,
// at run time.
func (a *App) CheckTensorJoins(cat TensorCatalog) error {
	var es Errors
	for i := range a.Deployments {
		d := &a.Deployments[i]
		if d.Join == nil || d.Join.Prefixed() {
			continue
		}
		if msg := a.tensorClash(d, cat); msg != "" {
			es = append(es, errorAt(a, indexPath("deployments", i)+".join", "%s", msg))
		}
	}
	return es.err()
}

// upstream is what one input of a join is known to answer with.
type upstream struct {
	d     *Deployment
	fixed []string // declared outputs
}

// tensorClash is the first clash among the inputs of join deployment j,
// as a message saying what to write instead; "" when none is known.
func (a *App) tensorClash(j *Deployment, cat TensorCatalog) string {
	var ups []upstream
	var models []string // the request models the graph can be called for
	for _, e := range a.Edges {
		if e.To != j.Name || e.Mirror || slices.ContainsFunc(ups, func(u upstream) bool { return u.d.Name == e.From }) {
			continue
		}
		d := a.deployment(e.From)
		if d == nil {
			continue
		}
		u := upstream{d: d}
		for _, t := range d.Outputs {
			u.fixed = append(u.fixed, t.Name)
		}
		if d.Kind == KindModel {
			models = append(models, servedModels(d, cat)...)
		}
		ups = append(ups, u)
	}
	slices.Sort(models)
	models = slices.Compact(models)
	if len(models) == 0 {
		models = []string{""}
	}
	fix := fmt.Sprintf("set join.tensors: %s on %s (each tensor is then named <upstream>.<name>)", JoinTensorsPrefix, j.Name)
	for _, m := range models {
		from := map[string]string{} // tensor name -> where it comes from
		var whole []string          // model upstreams answering m with outputs the catalog does not know
		for _, u := range ups {
			names, what := u.fixed, fmt.Sprintf("%s (its declared outputs)", u.d.Name)
			if u.d.Kind == KindModel {
				if m == "" || !slices.Contains(servedModels(u.d, cat), m) {
					continue
				}
				var version string
				var ok bool
				if cat != nil {
					names, version, ok = cat.Outputs(u.d, m)
				}
				if !ok {
					whole = append(whole, u.d.Name)
					continue
				}
				what = fmt.Sprintf("%s (model %s version %s)", u.d.Name, m, version)
			}
			for _, n := range names {
				if f, dup := from[n]; dup {
					return fmt.Sprintf("tensor %q would come from both %s and %s, and a joined inference request takes each name once: %s, or rename one of them", n, f, what, fix)
				}
				from[n] = what
			}
		}
		if len(whole) > 1 {
			return fmt.Sprintf("%s both serve model %s, and a request names one model for the whole graph: each would answer with the same outputs, and a joined inference request takes each name once: %s", strings.Join(whole, " and "), m, fix)
		}
	}
	return ""
}

// servedModels is the models a model deployment can be called for: the
// ones it names, and those the catalog has that it serves.
func servedModels(d *Deployment, cat TensorCatalog) []string {
	var out []string
	if d.Model != nil {
		out = append(out, d.Model.Names...)
	}
	if cat != nil {
		out = append(out, cat.ModelsServed(d)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// deployment is the deployment named name, or nil.
func (a *App) deployment(name string) *Deployment {
	for i := range a.Deployments {
		if a.Deployments[i].Name == name {
			return &a.Deployments[i]
		}
	}
	return nil
}
