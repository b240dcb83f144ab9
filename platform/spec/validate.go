package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits checked by App.Validate.
const (
	maxNameLen          = 63
	maxPartitions       = 1024
	maxRequestTimeout   = Duration(10 * time.Minute)
	maxOngoingRequests  = 100000
	maxBatchSize        = 10000
	maxBatchWaitTimeout = Duration(10 * time.Second)
)

// reservedPrefix returns the reserved prefix that p is, or lies under:
// the server itself serves /v2 (the inference protocol), /sluice, /ui
// (the dashboard) and /metrics; a GET of an application there would
// reach the server's page instead.
func reservedPrefix(p string) string {
	for _, r := range [...]string{"/v2", "/sluice", "/ui", "/metrics"} {
		if p == r || strings.HasPrefix(p, r+"/") {
			return r
		}
	}
	return ""
}

// Validate checks a (with its defaults applied, see Default) and returns
// Errors listing every problem, or nil. Errors carry the file, line and
// column when a was parsed from YAML, and always the field path.
func (a *App) Validate() error {
	return a.validate(false).err()
}

// validate checks a; skipRefs leaves out the checks of references to
// deployments by name (ingress, handles, edges, graph), for when decoding
// already lost some deployments.
func (a *App) validate(skipRefs bool) Errors {
	v := &validator{app: a}
	v.name("name", a.Name)
	v.routePrefix(a.RoutePrefix)
	if a.Partitions < 1 || a.Partitions > maxPartitions {
		v.add("partitions", "must be between 1 and %d, got %d", maxPartitions, a.Partitions)
	}
	switch {
	case a.RequestTimeout <= 0:
		v.add("request_timeout", "must be > 0, got %v", a.RequestTimeout)
	case a.RequestTimeout > maxRequestTimeout:
		v.add("request_timeout", "must be <= %v, got %v", time.Duration(maxRequestTimeout), a.RequestTimeout)
	}
	v.code("code", a.Code)
	switch a.Delivery {
	case "", DeliveryAtLeastOnce, DeliveryExactlyOnce:
	default:
		v.add("delivery", "unknown delivery %q: use %q (the default) or %q", a.Delivery, DeliveryAtLeastOnce, DeliveryExactlyOnce)
	}
	v.deployments()
	v.inference(a.Inference)
	v.rules()
	if !skipRefs {
		v.ingress()
		v.handles()
		v.edges()
		v.graph()
	}
	v.errs.sortByPosition()
	return v.errs
}

type validator struct {
	app    *App
	errs   Errors
	index  map[string]int // deployment name → index of its first definition
	cyclic bool           // the graph has a cycle: its dataflow has no meaning to check
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, errorAt(v.app, path, format, args...))
}

// errorAt makes an *Error for field path of a, with its position if known.
func errorAt(a *App, path, format string, args ...any) *Error {
	e := &Error{Field: path, Msg: fmt.Sprintf(format, args...)}
	if a.Source != nil {
		e.File = a.Source.File
		e.Line, e.Column = a.Source.position(path)
	}
	return e
}

// where says where field path of a is: "at line N", or "at path".
func where(a *App, path string) string {
	if line, _ := a.Source.position(path); line > 0 {
		return fmt.Sprintf("at line %d", line)
	}
	return "at " + path
}

// name checks a name that becomes part of Kafka topic names.
func (v *validator) name(path, s string) {
	if msg := nameProblem(s); msg != "" {
		v.add(path, "%s", msg)
	}
}

func nameProblem(s string) string {
	if s == "" {
		return "is required"
	}
	pos := 0
	for _, r := range s {
		pos++
		if !isAlnum(r) && r != '-' {
			return fmt.Sprintf("bad character %q in %q (position %d): use only letters, digits and '-', as names become parts of Kafka topic names", r, s, pos)
		}
	}
	if s[0] == '-' {
		return fmt.Sprintf("%q must start with a letter or digit", s)
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("must be at most %d characters, got %d", maxNameLen, len(s))
	}
	return ""
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func (v *validator) routePrefix(p string) {
	if msg := routePrefixProblem(p); msg != "" {
		v.add("route_prefix", "%s", msg)
	}
}

func routePrefixProblem(p string) string {
	if p == "" {
		return "is required"
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("must start with \"/\", got %q", p)
	}
	for i, r := range p {
		if !isAlnum(r) && !strings.ContainsRune("-._~/", r) {
			return fmt.Sprintf("bad character %q in %q (position %d): use only letters, digits and - . _ ~ /", r, p, utf8.RuneCountInString(p[:i])+1)
		}
	}
	if strings.Contains(p, "//") {
		return fmt.Sprintf("must not contain \"//\", got %q", p)
	}
	if p != "/" && strings.HasSuffix(p, "/") {
		return fmt.Sprintf("must not end with \"/\" (unless it is just \"/\"), got %q", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("must not contain a %q segment, got %q", seg, p)
		}
	}
	if r := reservedPrefix(p); r != "" {
		return fmt.Sprintf("%q is reserved: the server itself serves %s and every path under it (reserved prefixes: /v2, /sluice, /ui, /metrics)", p, r)
	}
	return ""
}

// deployments checks each deployment on its own and indexes their names.
func (v *validator) deployments() {
	v.index = map[string]int{}
	if len(v.app.Deployments) == 0 {
		v.add("deployments", "at least one deployment is required")
	}
	for i := range v.app.Deployments {
		v.deployment(i)
	}
}

func (v *validator) deployment(i int) {
	d := &v.app.Deployments[i]
	p := indexPath("deployments", i)
	if msg := nameProblem(d.Name); msg != "" {
		v.add(p+".name", "%s", msg)
	} else if first, dup := v.index[d.Name]; dup {
		v.add(p+".name", "duplicate deployment name %q, first defined %s",
			d.Name, where(v.app, indexPath("deployments", first)+".name"))
	} else {
		v.index[d.Name] = i
	}
	if d.Handler != d.Name {
		v.name(p+".handler", d.Handler)
	}
	v.model(p, d)
	v.routing(p, d)
	v.joinFields(p+".join", d.Join)
	if d.Kind == KindModel && len(d.Outputs) > 0 {
		v.add(p+".outputs", "a model deployment answers with its models' outputs, as the registry has their signatures: leave outputs out")
	}
	v.tensorSpecs(p+".outputs", d.Outputs)
	v.replicas(p+".replicas", d.Replicas, d.Autoscaling.AddPartitions)
	v.autoscaling(p+".autoscaling", d.Autoscaling)
	if d.MaxOngoingRequests < 1 || d.MaxOngoingRequests > maxOngoingRequests {
		v.add(p+".max_ongoing_requests", "must be between 1 and %d, got %d", maxOngoingRequests, d.MaxOngoingRequests)
	}
	v.userConfig(p+".user_config", d.UserConfig)
	v.resources(p+".resources", d.Resources)
	v.batching(p+".batching", d.Batching)
	if d.MaxModelsPerReplica < 0 {
		v.add(p+".max_models_per_replica", "must be >= 0, got %d", d.MaxModelsPerReplica)
	}
	for j, a := range d.Args {
		v.argValue(indexPath(p+".args", j), a)
	}
	v.code(p+".code", d.Code)
	if d.Code != "" && (d.Kind == KindModel || d.Kind == KindCEL) {
		v.add(p+".code", "a deployment of kind %s runs no code of its own", d.Kind)
	}
}

func (v *validator) replicas(p string, r Replicas, addPartitions bool) {
	if r.Min < 0 {
		v.add(p+".min", "must be >= 0, got %d", r.Min)
	}
	parts := v.app.Partitions
	switch {
	case r.Max < 1:
		v.add(p+".max", "must be >= 1, got %d", r.Max)
	case r.Min > r.Max:
		v.add(p+".max", "must be >= replicas.min (%d), got %d", r.Min, r.Max)
		return // initial cannot fit; one error is enough
	case parts >= 1 && int64(r.Max) > int64(parts) && !addPartitions:
		v.add(p+".max", "replicas.max %d exceeds partitions %d: a consumer group can have no more busy members than partitions (set autoscaling.add_partitions to let the autoscaler add them)", r.Max, parts)
	}
	switch {
	case r.Initial < 0 && r.Min <= 0:
		v.add(p+".initial", "must be >= 0, got %d", r.Initial)
	case r.Initial < r.Min:
		v.add(p+".initial", "must be >= replicas.min (%d), got %d", r.Min, r.Initial)
	case r.Max >= 1 && r.Initial > r.Max:
		v.add(p+".initial", "must be <= replicas.max (%d), got %d", r.Max, r.Initial)
	}
}

func (v *validator) userConfig(p string, raw json.RawMessage) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return
	}
	if !json.Valid(t) {
		v.add(p, "is not valid JSON")
		return
	}
	if t[0] != '{' {
		v.add(p, "must be a mapping, got %s", jsonKind(t))
	}
}

// jsonKind names the kind of the valid JSON value t.
func jsonKind(t []byte) string {
	switch t[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func (v *validator) resources(p string, r Resources) {
	v.nonNegative(p+".cpu", r.CPU)
	v.nonNegative(p+".gpu", r.GPU)
	if r.GPU > 1 && !math.IsInf(r.GPU, 0) && r.GPU != math.Trunc(r.GPU) {
		v.add(p+".gpu", "gpu %v: above 1, ask for whole GPUs", r.GPU)
	}
	if r.Memory < 0 {
		v.add(p+".memory", "must be >= 0, got %v", r.Memory)
	}
	switch {
	case r.GPUMemory < 0:
		v.add(p+".gpu_memory", "must be >= 0, got %v", r.GPUMemory)
	case r.GPUMemory > 0 && r.GPU == 0:
		v.add(p+".gpu_memory", "is set but resources.gpu is 0: gpu_memory only applies with a gpu > 0")
	}
}

func (v *validator) nonNegative(p string, x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		v.add(p, "must be a finite number >= 0, got %v", x)
	}
}

func (v *validator) batching(p string, b Batching) {
	if b.MaxBatchSize < 0 || b.MaxBatchSize > maxBatchSize {
		v.add(p+".max_batch_size", "must be between 0 and %d, got %d", maxBatchSize, b.MaxBatchSize)
	}
	switch {
	case b.BatchWaitTimeout < 0:
		v.add(p+".batch_wait_timeout", "must be >= 0, got %v", b.BatchWaitTimeout)
	case b.BatchWaitTimeout > maxBatchWaitTimeout:
		v.add(p+".batch_wait_timeout", "must be <= %v, got %v", maxBatchWaitTimeout, b.BatchWaitTimeout)
	}
}

// argValue checks an arg on its own; handles checks what handles name.
func (v *validator) argValue(p string, a Arg) {
	hasValue := len(bytes.TrimSpace(a.Value)) > 0
	switch {
	case a.Handle != "" && hasValue:
		v.add(p, "has both a handle and a value")
	case !hasValue:
	case !json.Valid(a.Value):
		v.add(p, "value is not valid JSON")
	default:
		if h, ok := handleOf(a.Value); ok {
			v.add(p, "value would read back as a handle to %q: set Handle instead", h)
		}
	}
}

func (v *validator) ingress() {
	a := v.app
	switch _, ok := v.index[a.Ingress]; {
	case a.Ingress == "":
		v.add("ingress", "is required")
	case !ok:
		v.add("ingress", "%q is not a deployment of this app", a.Ingress)
	}
}

func (v *validator) handles() {
	for i, d := range v.app.Deployments {
		for j, a := range d.Args {
			if a.Handle == "" {
				continue
			}
			p := indexPath(indexPath("deployments", i)+".args", j) + ".handle"
			if _, ok := v.index[a.Handle]; !ok {
				v.add(p, "handle %q is not a deployment of this app", a.Handle)
			} else if a.Handle == d.Name {
				v.add(p, "deployment %s cannot take a handle to itself", d.Name)
			}
		}
	}
}

func (v *validator) edges() {
	type pair struct{ from, to string }
	first := map[pair]int{}
	for i, e := range v.app.Edges {
		p := indexPath("edges", i)
		okFrom := v.endpoint(p+".from", e.From)
		okTo := v.endpoint(p+".to", e.To)
		v.edgeRules(i, e)
		if !okFrom || !okTo {
			continue
		}
		k := pair{e.From, e.To}
		if e.From == e.To {
			v.add(p, "edge from %s to itself", e.From)
		} else if j, dup := first[k]; dup {
			v.add(p, "duplicate edge %s -> %s, first defined %s", e.From, e.To, where(v.app, indexPath("edges", j)))
		} else {
			first[k] = i
		}
	}
}

func (v *validator) endpoint(p, name string) bool {
	if name == "" {
		v.add(p, "is required")
		return false
	}
	if _, ok := v.index[name]; !ok {
		v.add(p, "%q is not a deployment of this app", name)
		return false
	}
	return true
}

// isFirst reports whether deployment i has a valid name defined by no
// earlier deployment.
func (v *validator) isFirst(i int) bool {
	j, ok := v.index[v.app.Deployments[i].Name]
	return ok && j == i
}

// link is an arc of the app's graph: a handle arg or a dataflow edge.
type link struct {
	to   int
	path string // the field that makes the arc
}

// links returns the arcs out of each deployment, by index of first
// definition, leaving out arcs the checks above refused.
func (v *validator) links() [][]link {
	out := make([][]link, len(v.app.Deployments))
	for i, d := range v.app.Deployments {
		if !v.isFirst(i) {
			continue
		}
		for j, a := range d.Args {
			if to, ok := v.index[a.Handle]; ok && to != i {
				out[i] = append(out[i], link{to, indexPath(indexPath("deployments", i)+".args", j) + ".handle"})
			}
		}
	}
	for k, e := range v.app.Edges {
		from, okFrom := v.index[e.From]
		to, okTo := v.index[e.To]
		if okFrom && okTo && from != to {
			out[from] = append(out[from], link{to, indexPath("edges", k)})
		}
	}
	return out
}

// graph reports each cycle once and each deployment that the ingress
// cannot reach.
func (v *validator) graph() {
	adj := v.links()
	v.cycles(adj)
	v.reachable(adj)
}

func (v *validator) cycles(adj [][]link) {
	deps := v.app.Deployments
	state := make([]int8, len(deps)) // 0 unvisited, 1 on the stack, 2 done
	var stack []int
	seen := map[string]bool{}
	var visit func(u int)
	visit = func(u int) {
		state[u] = 1
		stack = append(stack, u)
		for _, l := range adj[u] {
			switch state[l.to] {
			case 0:
				visit(l.to)
			case 1:
				cycle := stack[slices.Index(stack, l.to):]
				if key := cycleKey(cycle); !seen[key] {
					seen[key] = true
					v.cyclic = true
					v.add(l.path, "graph has a cycle: %s", v.cycleString(cycle))
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[u] = 2
	}
	for i := range deps {
		if v.isFirst(i) && state[i] == 0 {
			visit(i)
		}
	}
}

// cycleKey names a cycle independently of where it starts.
func cycleKey(cycle []int) string {
	start := slices.Index(cycle, slices.Min(cycle))
	rotated := append(slices.Clone(cycle[start:]), cycle[:start]...)
	return fmt.Sprint(rotated)
}

func (v *validator) cycleString(cycle []int) string {
	names := make([]string, 0, len(cycle)+1)
	for _, i := range cycle {
		names = append(names, v.app.Deployments[i].Name)
	}
	names = append(names, names[0])
	return strings.Join(names, " -> ")
}

func (v *validator) reachable(adj [][]link) {
	start, ok := v.index[v.app.Ingress]
	if !ok {
		return
	}
	reached := make([]bool, len(adj))
	reached[start] = true
	queue := []int{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, l := range adj[u] {
			if !reached[l.to] {
				reached[l.to] = true
				queue = append(queue, l.to)
			}
		}
	}
	for i, d := range v.app.Deployments {
		if v.isFirst(i) && !reached[i] {
			v.add(indexPath("deployments", i), "deployment %s is not reachable from ingress %s", d.Name, v.app.Ingress)
		}
	}
}
