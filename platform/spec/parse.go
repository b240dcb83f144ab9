package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxValueNodes bounds the YAML nodes one Parse call visits, counting each
// use of an alias again, so that alias bombs fail instead of exhausting memory.
const maxValueNodes = 1 << 20

// Parse decodes every YAML document in data, applies defaults (App.Default)
// and validates each application (App.Validate). file names the source in
// errors and in each App's Source. Decoding is strict: unknown fields,
// duplicate keys and values of the wrong type are errors. Parse reports all
// the errors it finds, as Errors; on error it returns no apps.
func Parse(file string, data []byte) ([]*App, error) {
	d := &decoder{file: file, budget: maxValueNodes, active: map[*yaml.Node]bool{}}
	docs, err := readDocuments(data)
	if err != nil {
		d.errs = append(d.errs, syntaxError(file, err))
	}
	var apps []*App
	for _, root := range docs {
		app, bad := d.app(root)
		app.Default()
		d.errs = append(d.errs, withoutFields(app.validate(refsIncomplete(bad)), bad)...)
		apps = append(apps, app)
	}
	if len(apps) == 0 && err == nil {
		d.errs = append(d.errs, &Error{File: file, Msg: "no application: the file holds no YAML document"})
	}
	d.checkAcross(apps)
	if len(d.errs) > 0 {
		d.errs.sortByPosition()
		return nil, d.errs
	}
	return apps, nil
}

// readDocuments returns the root node of each non-empty document in data.
// It turns a panic in the YAML library into an error.
func readDocuments(data []byte) (roots []*yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: internal error: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return roots, nil
			}
			return roots, err
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // an empty document, as after a trailing "---"
		}
		roots = append(roots, root)
	}
}

// syntaxError turns a yaml.v3 error such as "yaml: line 3: mapping values
// are not allowed in this context" into an *Error with the line.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				e.Line, msg = line, after
			}
		}
	}
	if isParserProblem(msg) {
		// yaml.v3 reports the lines of parser (not scanner) errors 0-based,
		// and leaves out line 0.
		e.Line++
	}
	e.Msg = "bad YAML: " + msg
	return e
}

// isParserProblem reports whether msg is one of the problems found by the
// yaml.v3 parser, as opposed to its scanner.
func isParserProblem(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>",
		"did not find expected <document start>",
		"did not find expected node content",
		"did not find expected '-' indicator",
		"did not find expected key",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"found undefined tag handle",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found duplicate %TAG directive":
		return true
	}
	return false
}

// withoutFields drops the validation errors about fields that already have
// a decoding error, or lie inside one, as they would only repeat it. A bad
// root ("") covers every field.
func withoutFields(es Errors, bad []string) Errors {
	out := es[:0]
	for _, e := range es {
		if !insideAny(e.Field, bad) {
			out = append(out, e)
		}
	}
	return out
}

func insideAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if p == "" || path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// refsIncomplete reports whether decoding errors lost deployments or their
// names, in which case checks of references to deployments would mislead.
func refsIncomplete(bad []string) bool {
	for _, p := range bad {
		if p == "deployments" {
			return true
		}
		rest, ok := strings.CutPrefix(p, "deployments[")
		if !ok {
			continue
		}
		_, field, _ := strings.Cut(rest, "]")
		if field == "" || field == ".name" {
			return true
		}
	}
	return false
}

// checkAcross reports apps of one file that share a name or a route prefix.
func (d *decoder) checkAcross(apps []*App) {
	names := map[string]*App{}
	routes := map[string]*App{}
	for _, a := range apps {
		if first, ok := names[a.Name]; ok && a.Name != "" {
			d.errs = append(d.errs, errorAt(a, "name", "duplicate app name %q, first defined %s", a.Name, where(first, "name")))
		} else {
			names[a.Name] = a
		}
		if first, ok := routes[a.RoutePrefix]; ok && a.RoutePrefix != "" {
			d.errs = append(d.errs, errorAt(a, "route_prefix", "route prefix %q is also used by app %q (%s)", a.RoutePrefix, first.Name, where(first, "route_prefix")))
		} else {
			routes[a.RoutePrefix] = a
		}
	}
}

// decoder walks the YAML nodes of one Parse call.
type decoder struct {
	file      string
	errs      Errors
	budget    int                 // nodes left to visit
	exhausted bool                // the budget ran out (reported once)
	active    map[*yaml.Node]bool // alias targets being expanded
	src       *Source             // of the app being decoded
	bad       []string            // fields of that app with decoding errors
}

// app decodes one document into an App and returns it with the paths of
// the fields that had decoding errors.
func (d *decoder) app(root *yaml.Node) (*App, []string) {
	a := &App{}
	d.src = &Source{File: d.file, fields: map[string]fieldInfo{}}
	d.bad = nil
	a.Source = d.src
	d.at(root, "")
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "an application must be a mapping, got %s", describe(root))
		return a, d.bad
	}
	keys := []string{"name", "route_prefix", "ingress", "partitions", "request_timeout", "deployments", "edges", "inference", "rules", "code", "delivery"}
	d.fields(root, "", keys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "name":
			d.str(v, p, &a.Name)
		case "route_prefix":
			d.str(v, p, &a.RoutePrefix)
		case "ingress":
			d.str(v, p, &a.Ingress)
		case "partitions":
			d.int32(v, p, &a.Partitions)
		case "request_timeout":
			d.duration(v, p, &a.RequestTimeout)
		case "deployments":
			d.items(v, p, func(n *yaml.Node, p string) {
				a.Deployments = append(a.Deployments, d.deployment(n, p))
			})
		case "edges":
			d.items(v, p, func(n *yaml.Node, p string) {
				a.Edges = append(a.Edges, d.edge(n, p))
			})
		case "inference":
			a.Inference = d.inference(v, p)
		case "rules":
			d.items(v, p, func(n *yaml.Node, p string) {
				a.Rules = append(a.Rules, d.rule(n, p))
			})
		case "code":
			d.str(v, p, &a.Code)
		case "delivery":
			d.str(v, p, &a.Delivery)
		}
	})
	return a, d.bad
}

func (d *decoder) deployment(n *yaml.Node, path string) Deployment {
	var dep Deployment
	keys := []string{"name", "kind", "model", "handler", "args", "replicas", "autoscaling", "max_ongoing_requests", "user_config",
		"resources", "batching", "max_models_per_replica", "ordered", "routing", "split_key", "transform", "code", "join", "outputs"}
	d.fields(n, path, keys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "name":
			d.str(v, p, &dep.Name)
		case "kind":
			d.str(v, p, &dep.Kind)
		case "model":
			dep.Model = d.modelServing(v, p)
		case "handler":
			d.str(v, p, &dep.Handler)
		case "args":
			d.items(v, p, func(n *yaml.Node, p string) {
				dep.Args = append(dep.Args, d.arg(n, p))
			})
		case "replicas":
			d.replicas(v, p, &dep.Replicas)
		case "autoscaling":
			d.autoscaling(v, p, &dep.Autoscaling)
		case "max_ongoing_requests":
			d.int(v, p, &dep.MaxOngoingRequests)
		case "user_config":
			d.userConfig(v, p, &dep.UserConfig)
		case "resources":
			d.resources(v, p, &dep.Resources)
		case "batching":
			d.batching(v, p, &dep.Batching)
		case "max_models_per_replica":
			d.int(v, p, &dep.MaxModelsPerReplica)
		case "ordered":
			d.bool(v, p, &dep.Ordered)
		case "routing":
			d.str(v, p, &dep.Routing)
		case "split_key":
			d.str(v, p, &dep.SplitKey)
		case "transform":
			d.str(v, p, &dep.Transform)
		case "code":
			d.str(v, p, &dep.Code)
		case "join":
			dep.Join = d.join(v, p)
		case "outputs":
			dep.Outputs = d.tensors(v, p)
		}
	})
	return dep
}

// join decodes a deployment's join; null counts as absent.
func (d *decoder) join(n *yaml.Node, path string) *Join {
	if isNull(deref(n)) {
		return nil
	}
	j := &Join{}
	d.fields(n, path, []string{"type", "window", "trigger", "tensors"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "type":
			d.str(v, p, &j.Type)
		case "window":
			d.duration(v, p, &j.Window)
		case "trigger":
			d.items(v, p, func(n *yaml.Node, p string) {
				var name string
				d.str(n, p, &name)
				j.Trigger = append(j.Trigger, name)
			})
		case "tensors":
			d.str(v, p, &j.Tensors)
		}
	})
	return j
}

func (d *decoder) replicas(n *yaml.Node, path string, r *Replicas) {
	d.fields(n, path, []string{"min", "initial", "max"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "min":
			d.int(v, p, &r.Min)
		case "initial":
			d.int(v, p, &r.Initial)
		case "max":
			d.int(v, p, &r.Max)
		}
	})
}

func (d *decoder) resources(n *yaml.Node, path string, r *Resources) {
	d.fields(n, path, []string{"cpu", "memory", "gpu", "gpu_memory"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "cpu":
			d.float(v, p, &r.CPU)
		case "memory":
			d.bytes(v, p, &r.Memory)
		case "gpu":
			d.float(v, p, &r.GPU)
		case "gpu_memory":
			d.bytes(v, p, &r.GPUMemory)
		}
	})
}

func (d *decoder) batching(n *yaml.Node, path string, b *Batching) {
	d.fields(n, path, []string{"max_batch_size", "batch_wait_timeout"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "max_batch_size":
			d.int(v, p, &b.MaxBatchSize)
		case "batch_wait_timeout":
			d.duration(v, p, &b.BatchWaitTimeout)
		}
	})
}

func (d *decoder) edge(n *yaml.Node, path string) Edge {
	var e Edge
	d.fields(n, path, []string{"from", "to", "when", "transform", "weight", "mirror"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "from":
			d.str(v, p, &e.From)
		case "to":
			d.str(v, p, &e.To)
		case "when":
			d.str(v, p, &e.When)
		case "transform":
			d.str(v, p, &e.Transform)
		case "weight":
			d.int(v, p, &e.Weight)
		case "mirror":
			d.bool(v, p, &e.Mirror)
		}
	})
	return e
}

// arg decodes {handle: X} as a handle and any other value as a literal.
func (d *decoder) arg(n *yaml.Node, path string) Arg {
	t := deref(n)
	if t.Kind != yaml.MappingNode || !hasKey(t, "handle") {
		v, _ := d.value(n, path)
		return Arg{Value: v}
	}
	var a Arg
	var first *yaml.Node
	for i := 0; i+1 < len(t.Content); i += 2 {
		k, v := deref(t.Content[i]), t.Content[i+1]
		switch {
		case k.Value != "handle":
			d.fail(k, path, "a handle arg takes no other key, got %q", k.Value)
		case first != nil:
			d.fail(k, path+".handle", "duplicate key \"handle\" (first at line %d)", first.Line)
		default:
			first = k
			d.at(v, path+".handle")
			d.str(v, path+".handle", &a.Handle)
			if d.src.set(path+".handle") && a.Handle == "" {
				d.fail(v, path+".handle", "is required: name a deployment")
			}
		}
	}
	return a
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return true
		}
	}
	return false
}

// userConfig decodes a mapping into JSON; null counts as absent.
func (d *decoder) userConfig(n *yaml.Node, path string, out *json.RawMessage) {
	t := deref(n)
	if isNull(t) {
		return
	}
	if t.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping, got %s", describe(t))
		return
	}
	if v, ok := d.value(n, path); ok {
		*out = v
		d.ok(path)
	}
}
