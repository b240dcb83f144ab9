package spec

import (
	"fmt"
	"slices"
	"strings"
)

// CheckGraph checks, at deploy, that the dataflow of a (valid, see
// Validate) defines one answer per request, and returns Errors naming
// each problem with its file:line:column, or nil.
//
// Every application is called synchronously: it has a route prefix, and
// the gateway sends requests to its ingress by that prefix and by name
// (OIP, Predict); the same graph serves offline records from its input
// topic. A sync caller waits for one answer, so the graph must give at
// most one per request:
//
//   - fan-in: a deployment with more than one incoming dataflow edge
//     declares a join (else it would run once per arriving input);
//   - fan-out: under routing all, two edges of one deployment whose
//     branches can answer from different deployments are refused unless
//     both carry a when (the platform cannot prove two conditions
//     exclusive; the author can): gather them with a join, choose one
//     with routing first, or mark the copies mirror;
//   - shadowing: under routing first, the edges after one without when
//     are never taken;
//   - mirrors: a mirror's branch never reaches the caller, so it must not
//     flow into the branches that answer, nor be the only way to an
//     answer.
//
// Offline fan-out that keeps every branch's result writes the extra
// branches as mirrors, puts a when on each, or gathers them with a join.
//
// Parse and Validate leave these rules out: a stored application that
// predates them keeps running, and tools that only read specs (sluice
// render) take any graph; the platform checks them on every deploy.
func (a *App) CheckGraph() error {
	v := &validator{app: a, index: map[string]int{}}
	for i, d := range a.Deployments {
		if _, dup := v.index[d.Name]; !dup && d.Name != "" {
			v.index[d.Name] = i
		}
	}
	v.cycles(v.links())
	if v.cyclic {
		return nil // Validate reports it
	}
	v.errs = nil
	v.dataflow()
	v.errs.sortByPosition()
	return v.errs.err()
}

// NotServed refuses, at deploy, what the spec accepts but replicas do not
// run: the Python replica neither joins, nor drops a mirrored copy's
// answers, nor keeps a partition's order, nor routes its outputs by
// rules, so a join on a deployment of a python-project bundle, a mirror
// edge into one, `ordered: true` on one, and rules on its outgoing edges
// (routing other than all, when, transform, a mirror) are refused at the
// field. Go replicas serve them all, under either delivery.
func (a *App) NotServed() error {
	var es Errors
	python := func(d *Deployment) bool { return d.Bundle != nil && d.Bundle.Format == formatPython }
	byName := map[string]*Deployment{}
	for i := range a.Deployments {
		d := &a.Deployments[i]
		byName[d.Name] = d
		if d.Join != nil && python(d) {
			es = append(es, errorAt(a, indexPath("deployments", i)+".join",
				"%s runs Python code (bundle %s), and the Python replica does not join inputs yet: it would run once per arriving input; run the join in a Go deployment or a kind: cel one", d.Name, d.Bundle.Name))
		}
		if d.Ordered && python(d) {
			es = append(es, errorAt(a, indexPath("deployments", i)+".ordered",
				"%s runs Python code (bundle %s), and the Python replica does not keep a partition's order yet: its records run concurrently; drop ordered, or set max_ongoing_requests: 1", d.Name, d.Bundle.Name))
		}
		if d.Routing != "" && d.Routing != RouteAll && python(d) {
			es = append(es, errorAt(a, indexPath("deployments", i)+".routing",
				"%s runs Python code (bundle %s), and the Python replica does not route its outputs by rules yet: routing %s needs a Go deployment, or a kind: cel one after it", d.Name, d.Bundle.Name, d.Routing))
		}
	}
	for k, e := range a.Edges {
		if d := byName[e.To]; e.Mirror && d != nil && python(d) {
			es = append(es, errorAt(a, indexPath("edges", k)+".mirror",
				"%s runs Python code (bundle %s), and the Python replica does not drop a mirrored copy's answers yet: they would reach the output topic; mirror to a Go deployment", e.To, d.Bundle.Name))
		}
		from := byName[e.From]
		if from == nil || !python(from) {
			continue
		}
		for field, set := range map[string]bool{"when": e.When != "", "transform": e.Transform != "", "mirror": e.Mirror} {
			if set {
				es = append(es, errorAt(a, indexPath("edges", k)+"."+field,
					"%s runs Python code (bundle %s), and the Python replica does not route its outputs by rules yet: an edge out of it with %s needs a kind: cel deployment between them", e.From, from.Bundle.Name, field))
			}
		}
	}
	es.sortByPosition()
	return es.err()
}

// formatPython is the code bundle format of a Python project
// (registry.FormatPythonProject).
const formatPython = "python-project"

// flow is the dataflow graph of the edges that passed the edge checks.
type flow struct {
	out, in [][]int // edge indices out of and into each deployment (first definitions)
	live    []bool  // reached from the ingress through edges that are not mirrors
	all     []bool  // reached from the ingress through any edge
}

func (v *validator) flow() *flow {
	n := len(v.app.Deployments)
	f := &flow{out: make([][]int, n), in: make([][]int, n)}
	type pair struct{ from, to int }
	seen := map[pair]bool{}
	for k, e := range v.app.Edges {
		from, okFrom := v.index[e.From]
		to, okTo := v.index[e.To]
		if !okFrom || !okTo || from == to || seen[pair{from, to}] {
			continue
		}
		seen[pair{from, to}] = true
		f.out[from] = append(f.out[from], k)
		f.in[to] = append(f.in[to], k)
	}
	start, ok := v.index[v.app.Ingress]
	if !ok {
		return f
	}
	f.live = f.reach(v, start, false)
	f.all = f.reach(v, start, true)
	return f
}

func (f *flow) reach(v *validator, start int, mirrors bool) []bool {
	seen := make([]bool, len(f.out))
	seen[start] = true
	queue := []int{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, k := range f.out[u] {
			e := v.app.Edges[k]
			if e.Mirror && !mirrors {
				continue
			}
			if to := v.index[e.To]; !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	return seen
}

// dataflow checks joins, fan-out, shadowed branches and mirrors.
func (v *validator) dataflow() {
	if v.cyclic {
		return
	}
	f := v.flow()
	for i := range v.app.Deployments {
		if v.isFirst(i) {
			v.fanIn(f, i)
			v.shadowed(f, i)
		}
	}
	if f.live == nil {
		return // no ingress: reported already
	}
	v.mirrors(f)
	answers := make([][]string, len(v.app.Deployments))
	state := make([]int8, len(v.app.Deployments))
	for i := range v.app.Deployments {
		if v.isFirst(i) && f.live[i] {
			v.fanOut(f, i, answers, state)
		}
	}
}

// describeEdges names edges as "edges[2] from Plus1, edges[3] from Times10".
func (v *validator) describeEdges(ks []int, end func(Edge) string) string {
	parts := make([]string, len(ks))
	for j, k := range ks {
		parts[j] = fmt.Sprintf("%s %s", indexPath("edges", k), end(v.app.Edges[k]))
	}
	return strings.Join(parts, ", ")
}

func edgeFrom(e Edge) string { return "from " + e.From }

// fanIn checks deployment i's join against its incoming edges.
func (v *validator) fanIn(f *flow, i int) {
	d := &v.app.Deployments[i]
	p := indexPath("deployments", i)
	in := f.in[i]
	switch {
	case len(in) > 1 && d.Join == nil:
		v.add(p, "deployment %s has %d incoming dataflow edges (%s) and no join: it would run once per arriving input and answer once per branch; "+
			"write join: {type: inner} on %s to get one input per request, an object keyed by upstream name (outer: what arrives within the window, the rest null; any: the first), "+
			"or feed it from one deployment only", d.Name, len(in), v.describeEdges(in, edgeFrom), d.Name)
	case d.Join != nil && len(in) < 2:
		v.add(p+".join", "a join combines two or more incoming dataflow edges; %s has %d%s: remove the join", d.Name, len(in), parenthesized(v.describeEdges(in, edgeFrom)))
	}
	if d.Join == nil {
		return
	}
	sources := make([]string, len(in))
	for j, k := range in {
		sources[j] = v.app.Edges[k].From
	}
	for j, t := range d.Join.Trigger {
		tp := indexPath(p+".join.trigger", j)
		switch {
		case !slices.Contains(sources, t):
			v.add(tp, "%q is not an input of %s's join: a trigger names the source of one of its incoming edges (%s)", t, d.Name, strings.Join(sources, ", "))
		case slices.Index(d.Join.Trigger, t) < j:
			v.add(tp, "duplicate trigger %q", t)
		}
	}
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// joinFields checks a join's own fields.
func (v *validator) joinFields(p string, j *Join) {
	if j == nil {
		return
	}
	switch j.Type {
	case JoinInner, JoinOuter, JoinAny:
	default:
		v.add(p+".type", "unknown join type %q: use %q (every input), %q (what arrives within the window, the rest null) or %q (the first)", j.Type, JoinInner, JoinOuter, JoinAny)
	}
	switch {
	case j.Window <= 0:
		v.add(p+".window", "must be > 0, got %v: how long a request's inputs are awaited", j.Window)
	case v.app.RequestTimeout > 0 && j.Window > v.app.RequestTimeout:
		v.add(p+".window", "%v is longer than request_timeout %v: a sync caller would give up first", j.Window, v.app.RequestTimeout)
	}
	switch j.Tensors {
	case "", JoinTensorsMerge, JoinTensorsPrefix:
	default:
		v.add(p+".tensors", "unknown tensor naming %q: use %q (each tensor under its own name) or %q (named <upstream>.<name>)", j.Tensors, JoinTensorsMerge, JoinTensorsPrefix)
	}
}

// shadowed reports, under routing first, the edges that follow one
// without when: they are never taken.
func (v *validator) shadowed(f *flow, i int) {
	d := &v.app.Deployments[i]
	if d.Routing != RouteFirst {
		return
	}
	deflt := -1
	for _, k := range f.out[i] {
		e := v.app.Edges[k]
		if e.Mirror {
			continue // outside the routing
		}
		if deflt >= 0 {
			v.add(indexPath("edges", k), "edge %s -> %s is never taken: under routing first, %s (to %s) has no when and takes every output of %s; "+
				"move the default branch last, or give it a when", e.From, e.To, indexPath("edges", deflt), v.app.Edges[deflt].To, d.Name)
			continue
		}
		if e.When == "" {
			deflt = k
		}
	}
}

// mirrors checks that mirrored branches stay apart from those that
// answer, and that a mirror is not the only way to an answer: a kind cel
// deployment runs no code, so when every edge out of it is a mirror the
// caller would get its own transform of the input while the answers of
// what it feeds are dropped. (A handler whose edges are all mirrors
// answers itself, its outputs copied: a shadow or a log.)
func (v *validator) mirrors(f *flow) {
	for k, e := range v.app.Edges {
		fromI, okF := v.index[e.From]
		toI, okT := v.index[e.To]
		if !okF || !okT || fromI == toI {
			continue
		}
		p := indexPath("edges", k)
		switch {
		case e.Mirror && f.live[fromI] && v.app.Deployments[fromI].Kind == KindCEL && v.onlyMirrors(f, fromI):
			v.add(p+".mirror", "mirror on the only path to an answer: every edge out of %s is a mirror and %s runs no code (kind cel), so the caller would get its transform of the input "+
				"while the answers of %s are dropped; drop mirror: true on the branch whose answer the caller gets", e.From, e.From, e.To)
		case (e.Mirror || f.all[fromI] && !f.live[fromI]) && f.live[toI]:
			v.add(p, "a mirrored branch flows into %s, whose answers reach the caller: a mirror's answers never do; end the mirrored branch apart", e.To)
		}
	}
}

// onlyMirrors reports whether every edge out of deployment i is a mirror.
func (v *validator) onlyMirrors(f *flow, i int) bool {
	for _, k := range f.out[i] {
		if !v.app.Edges[k].Mirror {
			return false
		}
	}
	return true
}

// fanOut checks that deployment i, under routing all, sends no request
// down two branches that answer from different deployments.
func (v *validator) fanOut(f *flow, i int, answers [][]string, state []int8) {
	d := &v.app.Deployments[i]
	if d.Routing != "" && d.Routing != RouteAll {
		return
	}
	var branches []int
	for _, k := range f.out[i] {
		if !v.app.Edges[k].Mirror {
			branches = append(branches, k)
		}
	}
	for x, k1 := range branches {
		for _, k2 := range branches[x+1:] {
			e1, e2 := v.app.Edges[k1], v.app.Edges[k2]
			if e1.When != "" && e2.When != "" {
				continue // conditions the author keeps exclusive
			}
			a := v.answers(f, v.index[e1.To], answers, state)
			b := v.answers(f, v.index[e2.To], answers, state)
			names := sortedUnion(a, b)
			if len(names) < 2 {
				continue
			}
			v.add(indexPath("deployments", i)+".routing",
				"%s (routing all) sends each output down %s (to %s) and %s (to %s), which answer from %s: a sync caller gets one answer per request, so it would get one of them and the others would be dropped; "+
					"gather them with a join on a deployment both branches reach, choose one with routing: first (or conditions on both edges), or mark mirror: true on the edges whose answers must not reach the caller",
				d.Name, indexPath("edges", k1), e1.To, indexPath("edges", k2), e2.To, strings.Join(names, " and "))
			return // once per deployment
		}
	}
}

// answers lists the deployments whose output can be the answer once
// deployment i runs: those its live branches reach that take no edge.
func (v *validator) answers(f *flow, i int, memo [][]string, state []int8) []string {
	switch state[i] {
	case 2:
		return memo[i]
	case 1:
		return nil // a cycle, reported already
	}
	state[i] = 1
	d := &v.app.Deployments[i]
	var out []string
	fallThrough := true // the output may take no edge
	for _, k := range f.out[i] {
		e := v.app.Edges[k]
		if e.Mirror {
			continue
		}
		out = sortedUnion(out, v.answers(f, v.index[e.To], memo, state))
		if e.When == "" || d.Routing == RouteSplit {
			fallThrough = false
		}
	}
	if fallThrough {
		out = sortedUnion(out, []string{d.Name})
	}
	memo[i], state[i] = out, 2
	return out
}

func sortedUnion(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
