package spec

import (
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// KindModel is the kind of a deployment that serves registry models with
// a built-in handler instead of user code.
const KindModel = "model"

// ModelServing says which registry models a `kind: model` deployment
// serves and how its replicas keep them. Names and Selector both empty
// means any model in the registry.
type ModelServing struct {
	Names    []string          `json:"names,omitempty"`    // these models
	Selector map[string]string `json:"selector,omitempty"` // or every model with a version labelled so
	// Runtime restricts the deployment to one artifact format; empty: each
	// version is loaded by the runtime of its own format.
	Runtime string `json:"runtime,omitempty"`
	// DefaultVersion is what a request that names no version gets: a
	// version ("3") or an alias ("@production"); empty: the highest.
	DefaultVersion string `json:"default_version,omitempty"`
	// Spread is how many partitions (so, up to how many replicas) one
	// model's requests are spread over; 0: automatic, from each model's
	// share of the traffic.
	Spread       int   `json:"spread,omitempty"`
	MemoryBudget Bytes `json:"memory_budget,omitempty"` // loaded models' memory per replica; 0: no budget
	DiskBudget   Bytes `json:"disk_budget,omitempty"`   // the download cache per replica; 0: no budget
}

// DefaultModelsPerReplica is max_models_per_replica when a model
// deployment does not set it.
const DefaultModelsPerReplica = 3

// Serves reports whether the deployment serves model, whose versions
// carry labels: it is named, or one of its versions has every label of
// the selector.
func (m *ModelServing) Serves(model string, labels ...map[string]string) bool {
	if m == nil {
		return false
	}
	if len(m.Names) > 0 && !slices.Contains(m.Names, model) {
		return false
	}
	if len(m.Selector) == 0 {
		return true
	}
	for _, l := range labels {
		if hasLabels(l, m.Selector) {
			return true
		}
	}
	return false
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Specificity ranks deployments that serve the same model: one that names
// it beats one that selects it by label, which beats one that takes any.
func (m *ModelServing) Specificity() int {
	switch {
	case m == nil:
		return 0
	case len(m.Names) > 0:
		return 2
	case len(m.Selector) > 0:
		return 1
	}
	return 0
}

func (m *ModelServing) clone() *ModelServing {
	if m == nil {
		return nil
	}
	c := *m
	c.Names = slices.Clone(m.Names)
	c.Selector = maps.Clone(m.Selector)
	return &c
}

func equalModelServing(a, b *ModelServing) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Names, b.Names) && maps.Equal(a.Selector, b.Selector) &&
		a.Runtime == b.Runtime && a.DefaultVersion == b.DefaultVersion && a.Spread == b.Spread &&
		a.MemoryBudget == b.MemoryBudget && a.DiskBudget == b.DiskBudget
}

func (d *decoder) modelServing(n *yaml.Node, path string) *ModelServing {
	m := &ModelServing{}
	keys := []string{"names", "selector", "runtime", "default_version", "spread", "memory_budget", "disk_budget"}
	d.fields(n, path, keys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "names":
			m.Names = d.strings(v, p)
		case "selector":
			m.Selector = d.stringMap(v, p)
		case "runtime":
			d.str(v, p, &m.Runtime)
		case "default_version":
			d.str(v, p, &m.DefaultVersion)
		case "spread":
			d.int(v, p, &m.Spread)
		case "memory_budget":
			d.bytes(v, p, &m.MemoryBudget)
		case "disk_budget":
			d.bytes(v, p, &m.DiskBudget)
		}
	})
	return m
}

// stringMap decodes a mapping of strings to strings.
func (d *decoder) stringMap(n *yaml.Node, path string) map[string]string {
	t := deref(n)
	if isNull(t) {
		return nil
	}
	if t.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of strings, got %s", describe(t))
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(t.Content); i += 2 {
		k, v := deref(t.Content[i]), t.Content[i+1]
		if !d.spend(k, path) {
			break
		}
		key, ok := d.key(k, path)
		if !ok {
			continue
		}
		p := joinPath(path, key)
		if _, dup := out[key]; dup {
			d.report(k, p, "duplicate key %q", key)
			continue
		}
		d.at(v, p)
		var s string
		d.str(v, p, &s)
		out[key] = s
	}
	return out
}

// model checks what a deployment's kind asks of it.
// noCode refuses what only a handler deployment takes on a deployment of
// a built-in kind: a handler, args, batching.
func (v *validator) noCode(p string, d *Deployment, runs, batching string) {
	if d.Handler != d.Name {
		v.add(p+".handler", "a deployment of kind %s %s; it takes no handler", d.Kind, runs)
	}
	if len(d.Args) > 0 {
		v.add(p+".args", "a deployment of kind %s takes no args", d.Kind)
	}
	if d.Batching.MaxBatchSize > 0 {
		v.add(p+".batching", "a deployment of kind %s %s", d.Kind, batching)
	}
}

func (v *validator) model(p string, d *Deployment) {
	switch d.Kind {
	case "":
		if d.Model != nil {
			v.add(p+".model", "is only for deployments of kind %q", KindModel)
		}
		return
	case KindModel:
	case KindCEL:
		if d.Model != nil {
			v.add(p+".model", "is only for deployments of kind %q", KindModel)
		}
		return
	default:
		v.add(p+".kind", "unknown kind %q: leave it out for a handler, or use %q or %q", d.Kind, KindModel, KindCEL)
		return
	}
	v.noCode(p, d, "runs the built-in model server", "does not batch requests yet")
	m := d.Model
	if m == nil {
		return // serves any model
	}
	seen := map[string]bool{}
	for i, name := range m.Names {
		q := indexPath(p+".model.names", i)
		switch {
		case modelNameProblem(name) != "":
			v.add(q, "model name %q: %s", name, modelNameProblem(name))
		case seen[name]:
			v.add(q, "duplicate model %q", name)
		}
		seen[name] = true
	}
	if len(m.Names) > 0 && len(m.Selector) > 0 {
		v.add(p+".model.selector", "give names or a selector, not both")
	}
	for _, k := range slices.Sorted(maps.Keys(m.Selector)) {
		if k == "" {
			v.add(p+".model.selector", "a label key must not be empty")
		}
	}
	if dv := strings.TrimPrefix(m.DefaultVersion, "@"); m.DefaultVersion != "" && modelNameProblem(dv) != "" {
		v.add(p+".model.default_version", "%q: %s", m.DefaultVersion, modelNameProblem(dv))
	}
	parts := v.app.Partitions
	switch {
	case m.Spread < 0:
		v.add(p+".model.spread", "must be >= 0 (0: automatic), got %d", m.Spread)
	case parts >= 1 && int64(m.Spread) > int64(parts):
		v.add(p+".model.spread", "spread %d exceeds partitions %d", m.Spread, parts)
	}
	if m.MemoryBudget < 0 {
		v.add(p+".model.memory_budget", "must be >= 0, got %v", m.MemoryBudget)
	}
	if m.DiskBudget < 0 {
		v.add(p+".model.disk_budget", "must be >= 0, got %v", m.DiskBudget)
	}
}

// modelNameProblem mirrors the registry's rule for model names, versions
// and aliases: 1..128 characters of letters, digits, '.', '_' and '-',
// starting with a letter or digit.
func modelNameProblem(s string) string {
	if s == "" || len(s) > 128 {
		return "must be 1..128 characters"
	}
	if strings.Contains(s, "..") {
		return `".." is not allowed`
	}
	for i, r := range s {
		ok := r < 128 && (isAlnum(r) || i > 0 && (r == '.' || r == '_' || r == '-'))
		if !ok {
			return "use letters, digits, '.', '_' and '-', starting with a letter or digit"
		}
	}
	return ""
}
