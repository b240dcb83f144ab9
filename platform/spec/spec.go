package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"time"
)

// Defaults applied by App.Default.
const (
	DefaultPartitions         = 8
	DefaultRequestTimeout     = Duration(30 * time.Second)
	DefaultMaxOngoingRequests = 100
	DefaultBatchWaitTimeout   = Duration(10 * time.Millisecond)
	DefaultJoinWindow         = Duration(5 * time.Second)
)

// App is an application: a graph of deployments served under a route prefix.
type App struct {
	Name           string       `json:"name"`
	RoutePrefix    string       `json:"route_prefix"`
	Ingress        string       `json:"ingress"`
	Partitions     int32        `json:"partitions,omitempty"`
	RequestTimeout Duration     `json:"request_timeout,omitempty"`
	Deployments    []Deployment `json:"deployments"`
	Edges          []Edge       `json:"edges,omitempty"`
	Inference      *Inference   `json:"inference,omitempty"`
	Rules          []Rule       `json:"rules,omitempty"` // gateway rules, tried in order
	// Code is the code bundle the deployments run (see ParseCode): a
	// registry bundle NAME[@VERSION|@ALIAS], or in `sluice dev` a local
	// binary. "": the handlers built into the platform's binary.
	Code string `json:"code,omitempty"`
	// Delivery is how offline records are delivered through the graph:
	// at_least_once (the default, ""), or exactly_once, where each
	// replica's outputs and its input offsets commit in one Kafka
	// transaction.
	Delivery string  `json:"delivery,omitempty"`
	Source   *Source `json:"-"` // where it was parsed from (nil for apps built in Go)
}

// Delivery guarantees of an application's offline records.
const (
	DeliveryAtLeastOnce = "at_least_once" // outputs, then offsets: a replica killed between them repeats records
	DeliveryExactlyOnce = "exactly_once"  // outputs and offsets in one transaction; readers read committed
)

// ExactlyOnce reports whether the application delivers exactly once.
func (a *App) ExactlyOnce() bool { return a.Delivery == DeliveryExactlyOnce }

// Deployment is one node of an application's graph: a handler run by a
// group of replicas.
type Deployment struct {
	Name                string          `json:"name"`
	Kind                string          `json:"kind,omitempty"`  // "" (a handler) or "model"
	Model               *ModelServing   `json:"model,omitempty"` // what a model deployment serves
	Handler             string          `json:"handler,omitempty"`
	Args                []Arg           `json:"args,omitempty"`
	Replicas            Replicas        `json:"replicas"`
	Autoscaling         Autoscaling     `json:"autoscaling"`
	MaxOngoingRequests  int             `json:"max_ongoing_requests,omitempty"`
	UserConfig          json.RawMessage `json:"user_config,omitempty"`
	Resources           Resources       `json:"resources,omitzero"`
	Batching            Batching        `json:"batching,omitzero"`
	MaxModelsPerReplica int             `json:"max_models_per_replica,omitempty"`
	Ordered             bool            `json:"ordered,omitempty"`
	// Routing says which outgoing dataflow edges an output takes: all
	// (default), first or split. SplitKey, for split, is a CEL transform
	// whose value picks the edge stickily (default: the request id).
	Routing  string `json:"routing,omitempty"`
	SplitKey string `json:"split_key,omitempty"`
	// Transform is the output of a deployment of kind cel: a CEL
	// expression of its input (default: the input itself).
	Transform string `json:"transform,omitempty"`
	// Code overrides the application's code bundle for this deployment
	// (a graph that mixes bundles).
	Code string `json:"code,omitempty"`
	// Bundle is what the deployment's code resolved to when the
	// application was deployed: set by the platform, never written in
	// YAML. A new version is a new revision: the replicas roll.
	Bundle *BundlePin `json:"bundle,omitempty"`
	// HTTP marks an HTTP ingress deployment: its handler takes whole HTTP
	// requests (a handler of kind http), so the gateway passes every
	// method, the path, query and headers, and writes the status and
	// headers it answers. Set by the platform from the code's manifest
	// when the application is deployed, never written in YAML.
	HTTP bool `json:"http,omitempty"`
	// Join says how a deployment with more than one incoming dataflow
	// edge combines them into one input per request. Required there,
	// refused elsewhere.
	Join *Join `json:"join,omitempty"`
	// Outputs declares the Open Inference Protocol tensors the
	// deployment answers with, for the deploy-time check of a tensor
	// join downstream (a model deployment's are its models' signatures,
	// from the registry).
	Outputs []TensorSpec `json:"outputs,omitempty"`
}

// Join types: which inputs a join waits for.
const (
	JoinInner = "inner" // every input, within the window; else an error naming the missing ones (the default)
	JoinOuter = "outer" // what arrives within the window; the others are null
	JoinAny   = "any"   // the first input to arrive
)

// Join combines the inputs of a deployment's incoming dataflow edges into
// one input per request: a JSON object keyed by upstream deployment name.
type Join struct {
	Type   string   `json:"type,omitempty"`   // inner (default), outer or any
	Window Duration `json:"window,omitempty"` // how long a request's inputs are awaited (default 5s)
	// Trigger names the upstream deployments whose input fires the join
	// (default: as its type says); each must be the source of one of its
	// incoming edges. The join fires once every trigger input came (any:
	// one of them), with what else came by then; the others are null,
	// and dropped when they come later. An inner join whose window ends
	// first fails naming the trigger inputs that never came.
	Trigger []string `json:"trigger,omitempty"`
	// Tensors is how the Open Inference Protocol outputs of the
	// upstreams merge into the joined inference request: merge (the
	// default, ""), each tensor under its own name, a name from two
	// upstreams refused; or prefix, each tensor named
	// "<upstream>.<name>".
	Tensors string `json:"tensors,omitempty"`
}

// How a join names the tensors it merges.
const (
	JoinTensorsMerge  = "merge"  // by their own names; two of one name are refused (the default)
	JoinTensorsPrefix = "prefix" // "<upstream>.<name>"
)

// Prefixed reports whether the join names each merged tensor after its
// upstream.
func (j *Join) Prefixed() bool { return j != nil && j.Tensors == JoinTensorsPrefix }

// Clone returns a deep copy of j (nil for nil).
func (j *Join) Clone() *Join {
	if j == nil {
		return nil
	}
	c := *j
	c.Trigger = slices.Clone(j.Trigger)
	return &c
}

func equalJoin(a, b *Join) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Type == b.Type && a.Window == b.Window && slices.Equal(a.Trigger, b.Trigger) && a.Tensors == b.Tensors
}

// BundlePin is a code bundle version as deployed: a registry bundle's
// name, version and format, or a local binary's path (`sluice dev`), with
// the SHA-256 of the binary replicas run.
type BundlePin struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	Format  string `json:"format,omitempty"`
	Path    string `json:"path,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	// Image is an image bundle's reference: its pods run it (Kubernetes).
	Image string `json:"image,omitempty"`
}

// Replicas bounds the number of replicas of a deployment. Min 0 allows
// scaling to zero.
type Replicas struct {
	Min     int `json:"min"`
	Initial int `json:"initial"`
	Max     int `json:"max"`
}

// Resources is what each replica of a deployment needs.
type Resources struct {
	CPU       float64 `json:"cpu,omitempty"`
	Memory    Bytes   `json:"memory,omitempty"`
	GPU       float64 `json:"gpu,omitempty"`
	GPUMemory Bytes   `json:"gpu_memory,omitempty"`
}

// Batching groups requests into batches of up to MaxBatchSize, waiting at
// most BatchWaitTimeout for a batch to fill. MaxBatchSize 0 means no batching.
type Batching struct {
	MaxBatchSize     int      `json:"max_batch_size,omitempty"`
	BatchWaitTimeout Duration `json:"batch_wait_timeout,omitempty"`
}

// Edge is a dataflow edge: the output of From becomes the input of To.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// When is a CEL condition: the output takes this edge only when it
	// holds (see the source's routing).
	When string `json:"when,omitempty"`
	// Transform is a CEL expression building what To receives (default:
	// From's output).
	Transform string `json:"transform,omitempty"`
	// Weight is this edge's share of a split deployment's outputs.
	Weight int `json:"weight,omitempty"`
	// Mirror sends a copy: the edge stands outside its source's routing
	// (taken whenever its when holds), and the answers of what it reaches
	// never reach the caller (shadow traffic).
	Mirror bool `json:"mirror,omitempty"`
}

// Arg is a constructor argument: a handle to another deployment of the app
// (Handle set) or a literal JSON value (Value). In YAML and JSON it is
// written {"handle": "X"} or as the literal itself.
type Arg struct {
	Handle string          // set when the arg is {handle: X}
	Value  json.RawMessage // the literal otherwise
}

// Source tells where an App was parsed from. It also remembers the position
// of each field in the YAML, so that App.Validate can point at it, and which
// fields the YAML set, so that App.Default tells an explicit 0 from unset.
// It is shared, not copied, by App.Clone and must not be changed.
type Source struct {
	File   string
	fields map[string]fieldInfo // by field path
}

type fieldInfo struct {
	line, col int
	set       bool // the YAML gave a well-typed value
}

// position returns the line and column of field path, or of the closest
// enclosing field that has one.
func (s *Source) position(path string) (line, col int) {
	if s == nil {
		return 0, 0
	}
	for {
		if f, ok := s.fields[path]; ok {
			return f.line, f.col
		}
		if path == "" {
			return 0, 0
		}
		path = parentPath(path)
	}
}

// set reports whether the YAML gave a value for field path.
func (s *Source) set(path string) bool {
	return s != nil && s.fields[path].set
}

// MarshalJSON writes {"handle":"X"} for a handle and the literal otherwise
// (null when it is empty).
func (a Arg) MarshalJSON() ([]byte, error) {
	if a.Handle != "" {
		return json.Marshal(struct {
			Handle string `json:"handle"`
		}{a.Handle})
	}
	if len(bytes.TrimSpace(a.Value)) == 0 {
		return []byte("null"), nil
	}
	return a.Value, nil
}

// UnmarshalJSON reads an object whose only key is "handle" with a string
// value as a handle, and anything else as a literal.
func (a *Arg) UnmarshalJSON(data []byte) error {
	if h, ok := handleOf(data); ok {
		*a = Arg{Handle: h}
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return err
	}
	*a = Arg{Value: buf.Bytes()}
	return nil
}

// handleOf reports whether data is a JSON object {"handle": "X"}.
func handleOf(data []byte) (string, bool) {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || t[0] != '{' {
		return "", false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(t, &m) != nil || len(m) != 1 {
		return "", false
	}
	var h string
	if raw, ok := m["handle"]; !ok || json.Unmarshal(raw, &h) != nil {
		return "", false
	}
	return h, true
}

// Default fills in unset fields with their defaults: partitions 8,
// request_timeout 30s, handler = name, max_ongoing_requests 100,
// batch_wait_timeout 10ms when batching, and replicas:
//
//   - none of min, initial, max set: 1, 1, 1;
//   - min unset: 1, or less where initial or max is less (not below 0);
//   - initial unset: max(min, 1), but not above max;
//   - max unset: max(initial, min, 1).
//
// For an app parsed from YAML a field counts as set when the YAML gives it,
// so an explicit 0 stays 0. For an app built in Go a zero field counts as
// unset, except that Replicas.Min 0 counts as set when Replicas.Initial is
// set (so that an app read back from JSON keeps a min of 0). Default is
// idempotent.
func (a *App) Default() {
	set := presence{a.Source}
	if !set.has("partitions", a.Partitions != 0) {
		a.Partitions = DefaultPartitions
	}
	if !set.has("request_timeout", a.RequestTimeout != 0) {
		a.RequestTimeout = DefaultRequestTimeout
	}
	for i := range a.Deployments {
		a.Deployments[i].defaults(set, indexPath("deployments", i))
	}
}

// presence tells whether a field was set: by the YAML when there is a
// source, or else by being non-zero.
type presence struct{ src *Source }

func (p presence) has(path string, nonzero bool) bool {
	return nonzero || p.src.set(path)
}

func (d *Deployment) defaults(set presence, path string) {
	if !set.has(path+".handler", d.Handler != "") {
		d.Handler = d.Name
	}
	if !set.has(path+".max_ongoing_requests", d.MaxOngoingRequests != 0) {
		d.MaxOngoingRequests = DefaultMaxOngoingRequests
	}
	d.Replicas.defaults(set, path+".replicas")
	d.Autoscaling.defaults(set, path+".autoscaling", d.MaxOngoingRequests)
	if d.Kind == KindModel && !set.has(path+".max_models_per_replica", d.MaxModelsPerReplica != 0) {
		d.MaxModelsPerReplica = DefaultModelsPerReplica
	}
	if j := d.Join; j != nil {
		if !set.has(path+".join.type", j.Type != "") {
			j.Type = JoinInner
		}
		if !set.has(path+".join.window", j.Window != 0) {
			j.Window = DefaultJoinWindow
		}
	}
	b := &d.Batching
	if b.MaxBatchSize > 0 && !set.has(path+".batching.batch_wait_timeout", b.BatchWaitTimeout != 0) {
		b.BatchWaitTimeout = DefaultBatchWaitTimeout
	}
}

func (r *Replicas) defaults(set presence, path string) {
	minSet := set.has(path+".min", r.Min != 0 || (set.src == nil && r.Initial != 0))
	initSet := set.has(path+".initial", r.Initial != 0)
	maxSet := set.has(path+".max", r.Max != 0)
	if !minSet {
		r.Min = 1
		if initSet {
			r.Min = min(r.Min, r.Initial)
		}
		if maxSet {
			r.Min = min(r.Min, r.Max)
		}
		r.Min = max(r.Min, 0)
	}
	if !initSet {
		r.Initial = max(r.Min, 1)
		if maxSet {
			r.Initial = min(r.Initial, r.Max)
		}
	}
	if !maxSet {
		r.Max = max(r.Initial, r.Min, 1)
	}
}

// Clone returns a deep copy of a. The Source is shared.
func (a *App) Clone() *App {
	if a == nil {
		return nil
	}
	c := *a
	c.Edges = slices.Clone(a.Edges)
	c.Rules = slices.Clone(a.Rules)
	c.Inference = a.Inference.clone()
	c.Deployments = slices.Clone(a.Deployments)
	for i := range c.Deployments {
		d := &c.Deployments[i]
		d.UserConfig = cloneRaw(d.UserConfig)
		d.Args = slices.Clone(d.Args)
		d.Model = d.Model.clone()
		d.Join = d.Join.Clone()
		d.Outputs = cloneTensors(d.Outputs)
		if d.Bundle != nil {
			pin := *d.Bundle
			d.Bundle = &pin
		}
		for j := range d.Args {
			d.Args[j].Value = cloneRaw(d.Args[j].Value)
		}
	}
	return &c
}

func cloneRaw(r json.RawMessage) json.RawMessage {
	if r == nil {
		return nil
	}
	return bytes.Clone(r)
}

// Equal reports whether a and b describe the same application. It ignores
// Source, treats nil and empty lists alike, compares JSON values by meaning
// (not spelling) and an empty JSON value as null.
func Equal(a, b *App) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name &&
		a.RoutePrefix == b.RoutePrefix &&
		a.Ingress == b.Ingress &&
		a.Partitions == b.Partitions &&
		a.RequestTimeout == b.RequestTimeout &&
		a.Code == b.Code &&
		a.Delivery == b.Delivery &&
		slices.Equal(a.Edges, b.Edges) &&
		slices.Equal(a.Rules, b.Rules) &&
		equalInference(a.Inference, b.Inference) &&
		slices.EqualFunc(a.Deployments, b.Deployments, equalDeployment)
}

func equalDeployment(a, b Deployment) bool {
	return a.Name == b.Name &&
		a.Kind == b.Kind &&
		equalModelServing(a.Model, b.Model) &&
		a.Handler == b.Handler &&
		a.Replicas == b.Replicas &&
		a.Autoscaling == b.Autoscaling &&
		a.MaxOngoingRequests == b.MaxOngoingRequests &&
		a.Resources == b.Resources &&
		a.Batching == b.Batching &&
		a.MaxModelsPerReplica == b.MaxModelsPerReplica &&
		a.Ordered == b.Ordered &&
		a.Routing == b.Routing && a.SplitKey == b.SplitKey && a.Transform == b.Transform &&
		equalJoin(a.Join, b.Join) &&
		slices.EqualFunc(a.Outputs, b.Outputs, equalTensor) &&
		a.Code == b.Code && (a.Bundle == nil) == (b.Bundle == nil) && (a.Bundle == nil || *a.Bundle == *b.Bundle) && a.HTTP == b.HTTP &&
		equalJSON(a.UserConfig, b.UserConfig) &&
		slices.EqualFunc(a.Args, b.Args, func(x, y Arg) bool {
			return x.Handle == y.Handle && equalJSON(x.Value, y.Value)
		})
}

// equalJSON compares two JSON values by meaning; numbers are compared by
// their text. Invalid JSON is compared byte for byte.
func equalJSON(a, b json.RawMessage) bool {
	x, errA := decodeJSON(a)
	y, errB := decodeJSON(b)
	if errA != nil || errB != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func decodeJSON(r json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(r)) == 0 {
		return nil, nil
	}
	if !json.Valid(r) {
		return nil, errors.New("invalid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
