package gateway

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
)

// Registry models on the OIP endpoints: a model name that is not an
// application's is looked up in the model registry and served by the
// application whose ingress is a `kind: model` deployment that serves it.
// Its records are keyed by model, so they land on the partitions (and so
// the replicas) that already hold it; a model with a large share of the
// traffic is spread over more partitions.

// Catalog is what the gateway reads of the model registry.
type Catalog interface {
	Model(name string) (*registry.Model, error)
}

// modelApp is an application whose ingress serves registry models.
type modelApp struct {
	route
	serving    *spec.ModelServing
	partitions int32
}

func modelApps(apps []*spec.App, rt func(*spec.App) route) []modelApp {
	var out []modelApp
	for _, a := range apps {
		for _, d := range a.Deployments {
			if d.Name == a.Ingress && d.Kind == spec.KindModel {
				serving := d.Model
				if serving == nil {
					serving = &spec.ModelServing{}
				}
				out = append(out, modelApp{route: rt(a), serving: serving, partitions: a.Partitions})
			}
		}
	}
	// The most specific first: names, then selectors, then "any model".
	slices.SortStableFunc(out, func(a, b modelApp) int {
		return cmp.Or(b.serving.Specificity()-a.serving.Specificity(), strings.Compare(a.app, b.app))
	})
	return out
}

// registryModel finds the registry model and the application that serves it.
func (s *Server) registryModel(name, version string) (*registry.Model, modelApp, error) {
	if s.cfg.Models == nil {
		return nil, modelApp{}, streams.Errorf(streams.CodeNotFound, "unknown model %q", name)
	}
	m, err := s.cfg.Models.Model(name)
	if err != nil {
		return nil, modelApp{}, streams.Errorf(streams.CodeNotFound, "unknown model %q: no application and no registry model has that name", name)
	}
	for _, ma := range s.apps.Load().models {
		if ma.serving.Serves(name, m.Labels()...) {
			if version != "" {
				if _, err := m.Lookup(version); err != nil {
					return nil, modelApp{}, err
				}
			}
			return m, ma, nil
		}
	}
	return nil, modelApp{}, streams.Errorf(streams.CodeNotFound, "model %q is in the registry but no model deployment serves it", name)
}

// servedVersion is the version a request naming version gets: what the
// deployment's default version resolves to when version is empty.
func servedVersion(m *registry.Model, ma modelApp, version string) (*registry.Version, error) {
	if version == "" {
		version = ma.serving.DefaultVersion
	}
	return m.Lookup(version)
}

func registryVersions(m *registry.Model) []string {
	out := make([]string, len(m.Versions))
	for i, v := range m.Versions {
		out[i] = v.Version
	}
	return out
}

// spreader picks the record key of a registry model's request: the model
// name (so any Kafka producer that keys by model lands on the same
// partition), or one of the keys that land on the next partitions when the
// model is spread.
type spreader struct {
	window time.Duration

	mu     sync.Mutex
	start  time.Time
	counts map[string]int64   // requests per model in this window
	total  int64              // in this window
	shares map[string]float64 // per model, over the last window
	next   map[string]uint32  // round robin over a model's partitions
	keys   map[spreadKey][]byte
}

type spreadKey struct {
	model string
	parts int32
	slot  int32
}

func newSpreader() *spreader {
	return &spreader{window: 2 * time.Second, counts: map[string]int64{}, shares: map[string]float64{},
		next: map[string]uint32{}, keys: map[spreadKey][]byte{}}
}

// key returns the key of the next request for model on a topic of parts
// partitions; fixed > 0 spreads over that many partitions, 0 over as many
// as the model's share of the last window's requests deserves.
func (sp *spreader) key(model string, parts int32, fixed int) []byte {
	now := time.Now()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if now.Sub(sp.start) >= sp.window {
		clear(sp.shares)
		for m, n := range sp.counts {
			sp.shares[m] = float64(n) / float64(sp.total)
		}
		clear(sp.counts)
		sp.total, sp.start = 0, now
	}
	sp.counts[model]++
	sp.total++
	spread := int32(fixed)
	if spread <= 0 {
		spread = int32(math.Ceil(sp.shares[model] * float64(parts)))
	}
	spread = max(1, min(spread, parts))
	if spread == 1 {
		return []byte(model)
	}
	slot := int32(sp.next[model] % uint32(spread))
	sp.next[model]++
	if slot == 0 {
		return []byte(model)
	}
	k := spreadKey{model, parts, slot}
	if b, ok := sp.keys[k]; ok {
		return b
	}
	b := keyFor(model, parts, (streams.KeyPartition([]byte(model), parts)+slot)%parts)
	if len(sp.keys) > 100_000 { // a bound, should models come and go by the million
		clear(sp.keys)
	}
	sp.keys[k] = b
	return b
}

// keyFor finds a key "model#n" that the Kafka key partitioner sends to
// partition p of parts.
func keyFor(model string, parts, p int32) []byte {
	for n := 1; ; n++ {
		b := []byte(model + "#" + strconv.Itoa(n))
		if streams.KeyPartition(b, parts) == p {
			return b
		}
	}
}
