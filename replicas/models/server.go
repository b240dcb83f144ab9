package models

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Catalog is what the model server reads of the registry: a follower of
// its events topic.
type Catalog interface {
	Source
	Model(name string) (*registry.Model, error)
	Watch(fn func(registry.Event))
}

// ServerConfig configures the model server of one replica.
type ServerConfig struct {
	Deployment string
	Serving    *spec.ModelServing // nil: any model
	Catalog    Catalog
	Cache      *Cache
	Log        *slog.Logger
}

// Server is the handler of a `kind: model` deployment. A request names a
// model (sl-model) and a version, an alias ("@production") or nothing
// (the deployment's default version, else the highest). A version number
// is served as asked. A name that moves (an alias, or "the highest") is
// served from the version this replica serves it with now until the new
// target is loaded beside it; then requests switch and the old version is
// unloaded, so a move never makes a request wait for a load or fail.
//
// Lock order: Server.mu before Cache.mu (Server never holds mu while
// waiting for a load).
type Server struct {
	cfg ServerConfig

	mu         sync.Mutex
	defVersion string                       // live default version (user_config may change it)
	serving    map[string]map[string]string // model → moving name ("@alias", "") → the version it is served with here
	preloading map[string]bool              // "model/version" being loaded ahead of a switch
	onSwitch   func(model, from, to string) // tests observe switches

	reporter *Reporter // set by Factory.Build
	freeSlot func()    // gives the cache directory back to the Factory
}

// NewServer builds the model server and follows the catalog's events, so
// that alias moves and new versions are loaded ahead of requests.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, serving: map[string]map[string]string{}, preloading: map[string]bool{}}
	if cfg.Serving != nil {
		s.defVersion = cfg.Serving.DefaultVersion
	}
	cfg.Catalog.Watch(s.changed)
	return s
}

// Cache is the server's model cache.
func (s *Server) Cache() *Cache { return s.cfg.Cache }

// ServerSettings are the settings a model deployment's user_config may
// change on live replicas.
type ServerSettings struct {
	DefaultVersion *string     `json:"default_version"`
	MaxModels      *int        `json:"max_models_per_replica"`
	MemoryBudget   *spec.Bytes `json:"memory_budget"`
}

// Reconfigure applies a new user_config without a restart: default_version,
// max_models_per_replica and memory_budget (models past a lowered limit
// are unloaded once idle). Unknown keys are refused, naming them.
func (s *Server) Reconfigure(_ context.Context, config json.RawMessage) error {
	var set ServerSettings
	if len(config) > 0 && string(config) != "null" {
		dec := json.NewDecoder(bytes.NewReader(config))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&set); err != nil {
			return fmt.Errorf("user_config of model deployment %s: %w", s.cfg.Deployment, err)
		}
	}
	if set.MaxModels != nil && *set.MaxModels < 1 {
		return fmt.Errorf("user_config of model deployment %s: max_models_per_replica must be >= 1, got %d", s.cfg.Deployment, *set.MaxModels)
	}
	s.mu.Lock()
	switch {
	case set.DefaultVersion != nil:
		s.defVersion = *set.DefaultVersion
	case s.cfg.Serving != nil:
		s.defVersion = s.cfg.Serving.DefaultVersion
	default:
		s.defVersion = "" // no default in the spec: the highest
	}
	s.mu.Unlock()
	if set.MaxModels != nil || set.MemoryBudget != nil {
		var budget int64 = -1
		if set.MemoryBudget != nil {
			budget = int64(*set.MemoryBudget)
		}
		s.cfg.Cache.SetLimits(deref(set.MaxModels), budget)
	}
	return nil
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Handle serves one inference request.
func (s *Server) Handle(ctx context.Context, in *replicas.Input, out replicas.Output) error {
	name := in.Env.Model
	if name == "" {
		return streams.Errorf(streams.CodeInvalidArgument, "the request names no model: call /v2/models/{name}/infer, or set the %s header", protocol.HeaderModel)
	}
	m, err := s.cfg.Catalog.Model(name)
	if err != nil {
		return err
	}
	if !s.serves(m) {
		return streams.Errorf(streams.CodeNotFound, "deployment %s does not serve model %s", s.cfg.Deployment, name)
	}
	req, binary, err := decodeRequest(in)
	if err != nil {
		return err
	}
	v, err := s.resolve(m, in.Env.Version)
	if err != nil {
		return err
	}
	if rt := s.runtime(); rt != "" && v.Format != rt {
		return streams.Errorf(streams.CodeFailedPrecondition, "model %s version %s has format %q; deployment %s serves %q only", name, v.Version, v.Format, s.cfg.Deployment, rt)
	}
	if err := CheckInputs(v, req); err != nil {
		return err
	}
	loaded, _, release, err := s.cfg.Cache.AcquireVersion(ctx, v)
	if err != nil {
		return err
	}
	resp, err := inferReleasing(ctx, loaded, req, release)
	if err != nil {
		return err
	}
	resp.ModelName, resp.ModelVersion, resp.ID = name, v.Version, req.ID
	if binary {
		b, err := resp.MarshalBinary()
		if err != nil {
			return streams.Errorf(streams.CodeInternal, "model %s version %s answered an invalid response: %v", name, v.Version, err)
		}
		return out.Emit(b, oip.ContentType)
	}
	js, _, err := oip.EncodeResponseJSON(resp, func(string) bool { return false })
	if err != nil {
		return streams.Errorf(streams.CodeInternal, "model %s version %s: encode response: %v", name, v.Version, err)
	}
	return out.Emit(js, "application/json")
}

// inferReleasing runs the model and releases it, even when the runtime panics (the
// replica answers the panic as internal; the model stays evictable).
func inferReleasing(ctx context.Context, m Loaded, req *oip.InferRequest, release func()) (*oip.InferResponse, error) {
	defer release()
	return m.Infer(ctx, req)
}

func (s *Server) serves(m *registry.Model) bool {
	if s.cfg.Serving == nil {
		return true
	}
	return s.cfg.Serving.Serves(m.Name, m.Labels()...)
}

func (s *Server) runtime() string {
	if s.cfg.Serving == nil {
		return ""
	}
	return s.cfg.Serving.Runtime
}

// decodeRequest reads the payload form (from the gateway and handles) or
// the OIP REST JSON form (what a Kafka producer of offline batches
// writes); binary reports which, so the answer comes back the same way.
func decodeRequest(in *replicas.Input) (req *oip.InferRequest, binary bool, err error) {
	switch in.Env.ContentType {
	case oip.ContentType:
		req = new(oip.InferRequest)
		if err := req.UnmarshalBinary(in.Value); err != nil {
			return nil, true, streams.Errorf(streams.CodeInvalidArgument, "inference request: %v", err)
		}
		return req, true, nil
	case "", "application/json":
		req, err := oip.DecodeRequestJSON(in.Value)
		if err != nil {
			return nil, false, streams.Errorf(streams.CodeInvalidArgument, "inference request: %v", err)
		}
		return req, false, nil
	}
	return nil, false, streams.Errorf(streams.CodeInvalidArgument, "content type %q is not an inference request (%s or application/json)", in.Env.ContentType, oip.ContentType)
}

// CheckInputs checks a request against the version's signature: every
// input it declares is present with its datatype and a shape it accepts,
// and no input it does not declare. A version without a signature takes
// anything (its runtime checks).
func CheckInputs(v *registry.Version, req *oip.InferRequest) error {
	if len(v.Inputs) == 0 {
		return nil
	}
	given := make(map[string]*oip.Tensor, len(req.Inputs))
	for i := range req.Inputs {
		given[req.Inputs[i].Name] = &req.Inputs[i]
	}
	for _, want := range v.Inputs {
		t := given[want.Name]
		if t == nil {
			return streams.Errorf(streams.CodeInvalidArgument, "input %s is missing (model %s version %s takes %s)", want.Name, v.Model, v.Version, signature(v.Inputs))
		}
		delete(given, want.Name)
		if string(t.Datatype) != want.Datatype {
			return streams.Errorf(streams.CodeInvalidArgument, "input %s: datatype %s, model %s version %s takes %s", want.Name, t.Datatype, v.Model, v.Version, want.Datatype)
		}
		if !shapeFits(t.Shape, want.Shape) {
			return streams.Errorf(streams.CodeInvalidArgument, "input %s: shape %v, model %s version %s takes %v (-1: any size)", want.Name, t.Shape, v.Model, v.Version, want.Shape)
		}
	}
	for name := range given {
		return streams.Errorf(streams.CodeInvalidArgument, "input %s is not an input of model %s version %s (it takes %s)", name, v.Model, v.Version, signature(v.Inputs))
	}
	return nil
}

func shapeFits(got, want []int64) bool {
	if want == nil {
		return true // unknown rank
	}
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if want[i] != -1 && want[i] != got[i] {
			return false
		}
	}
	return true
}

func signature(ts []spec.TensorSpec) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s %s%v", t.Name, t.Datatype, t.Shape)
	}
	return strings.Join(parts, ", ")
}

// resolve picks the version a request gets.
func (s *Server) resolve(m *registry.Model, ref string) (*registry.Version, error) {
	if ref == "" {
		s.mu.Lock()
		ref = s.defVersion
		s.mu.Unlock()
	}
	if ref != "" && !strings.HasPrefix(ref, "@") {
		return m.Lookup(ref) // a version number: exactly that
	}
	target, err := m.Lookup(ref)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	names := s.serving[m.Name]
	if names == nil {
		names = map[string]string{}
		s.serving[m.Name] = names
	}
	cur, ok := names[ref]
	if !ok || cur == target.Version {
		names[ref] = target.Version
		s.mu.Unlock()
		return target, nil
	}
	old, err := m.Lookup(cur)
	if err != nil || s.moveLocked(target, cur) { // the old version is gone, or the target is ready
		names[ref] = target.Version
		s.mu.Unlock()
		s.switched(m.Name, cur, target.Version)
		return target, nil
	}
	s.mu.Unlock()
	return old, nil
}

// moveLocked decides for a moving name served here with version cur whose
// registry target is now target: switch at once (true) when the target is
// loaded or cur is not (nothing to keep answering from), else start
// loading the target and keep cur until it is. s.mu is held.
func (s *Server) moveLocked(target *registry.Version, cur string) bool {
	if s.cfg.Cache.IsLoaded(target.Model, target.Version) || !s.cfg.Cache.IsLoaded(target.Model, cur) {
		return true
	}
	s.preloadLocked(target)
	return false
}

// preloadLocked loads v in the background; when it is loaded, every moving
// name that points at it switches. s.mu is held.
func (s *Server) preloadLocked(v *registry.Version) {
	key := v.Model + "/" + v.Version
	if s.preloading[key] || s.cfg.Cache.HeldFailed(v.Model, v.Version) {
		return // loading, or failed recently: the old version keeps answering
	}
	s.preloading[key] = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, _, release, err := s.cfg.Cache.AcquireVersion(ctx, v)
		if err != nil {
			s.cfg.Log.Warn("model preload failed; still serving the previous version", "model", v.Model, "version", v.Version, "err", err)
		}
		s.mu.Lock()
		delete(s.preloading, key)
		s.mu.Unlock()
		if err == nil {
			// Switch while v is held: released first, it could be evicted
			// at once (the old version in use keeps the cache over its
			// limit), and advance would load it again, and again.
			s.advance(v.Model)
			release()
		}
	}()
}

// changed follows registry events: a moving name served here whose
// target changed gets its new version loaded now, not at the next request.
func (s *Server) changed(ev registry.Event) {
	s.mu.Lock()
	_, ok := s.serving[ev.Model]
	s.mu.Unlock()
	if ok {
		s.advance(ev.Model)
	}
}

// advance switches the moving names of model whose target is loaded, and
// starts loading the targets that are not.
func (s *Server) advance(model string) {
	m, err := s.cfg.Catalog.Model(model)
	if err != nil {
		return
	}
	type sw struct{ from, to string }
	var switches []sw
	s.mu.Lock()
	names := s.serving[model]
	for ref, cur := range names {
		target, err := m.Lookup(ref)
		if err == nil && target.Version != cur && s.moveLocked(target, cur) {
			names[ref] = target.Version
			switches = append(switches, sw{cur, target.Version})
		}
	}
	s.mu.Unlock()
	for _, x := range switches {
		s.switched(model, x.from, x.to)
	}
}

// switched unloads the version a moving name left, unless another moving
// name still points at it.
func (s *Server) switched(model, from, to string) {
	s.mu.Lock()
	inUse := slices.Contains(slices.Collect(maps.Values(s.serving[model])), from)
	fn := s.onSwitch
	s.mu.Unlock()
	s.cfg.Log.Info("model version switched", "model", model, "from", from, "to", to)
	if !inUse {
		s.cfg.Cache.Unload(model, from)
	}
	if fn != nil {
		fn(model, from, to)
	}
}

// Assigned passes the replica's partitions to its report.
func (s *Server) Assigned(p map[string][]int32) {
	if s.reporter != nil {
		s.reporter.SetPartitions(p)
	}
}

// Close unloads every model.
func (s *Server) Close() error {
	s.closeReporter()
	s.cfg.Cache.Close()
	if s.freeSlot != nil {
		s.freeSlot()
	}
	return nil
}
