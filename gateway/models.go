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
	Models() []*registry.Model
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
// partition, and so the same replica), or, for a model spread over k
// partitions, one of the keys that land on the k-1 partitions after its
// own that belong to other replicas (when the replicas' reports say who
// owns what; else the next partitions).
type spreader struct {
	window time.Duration

	mu     sync.Mutex
	start  time.Time
	counts map[string]int64   // requests per model in this window
	total  int64              // in this window
	shares map[string]float64 // per model, over the last window
	next   map[string]uint32  // round robin over a model's partitions
	keys   map[partKey][]byte
}

type partKey struct {
	model string
	parts int32
	p     int32
}

func newSpreader() *spreader {
	return &spreader{window: 2 * time.Second, counts: map[string]int64{}, shares: map[string]float64{},
		next: map[string]uint32{}, keys: map[partKey][]byte{}}
}

// key returns the key of the next request for model on a topic of parts
// partitions; ownersOf tells which replica owns which partition (it may
// be nil or return an empty map), and is asked only when the model may be
// spread: most requests, for models with a small share, do not pay for it.
// fixed > 0 spreads over that many partitions; 0 spreads by load: a model
// gets as many replicas as its share of the last window's requests is
// worth (share × replicas, rounded), at least one.
func (sp *spreader) key(model string, parts int32, fixed int, ownersOf func() map[int32]string) []byte {
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
	var owners map[int32]string
	// Replicas never outnumber partitions: a share worth under half a
	// partition rounds to one replica whoever owns what.
	if ownersOf != nil && (fixed > 1 || fixed <= 0 && sp.shares[model]*float64(parts) >= 0.5) {
		owners = ownersOf()
	}
	spread := int32(fixed)
	if spread <= 0 {
		replicas := distinct(owners)
		spread = int32(math.Round(sp.shares[model] * float64(replicas)))
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
	p := spreadPartitions(streams.KeyPartition([]byte(model), parts), parts, spread, owners)[slot]
	k := partKey{model, parts, p}
	if b, ok := sp.keys[k]; ok {
		return b
	}
	b := keyFor(model, parts, p)
	if len(sp.keys) > 100_000 { // a bound, should models come and go by the million
		clear(sp.keys)
	}
	sp.keys[k] = b
	return b
}

// spreadPartitions picks n partitions starting at home: first the next
// ones owned by replicas not picked yet, then the next ones in order.
func spreadPartitions(home, parts, n int32, owners map[int32]string) []int32 {
	picked := []int32{home}
	taken := map[int32]bool{home: true}
	used := map[string]bool{}
	if o, ok := owners[home]; ok {
		used[o] = true
	}
	for i := int32(1); i < parts && int32(len(picked)) < n; i++ {
		p := (home + i) % parts
		if o, ok := owners[p]; ok && !used[o] {
			used[o] = true
			picked, taken[p] = append(picked, p), true
		}
	}
	for i := int32(1); i < parts && int32(len(picked)) < n; i++ {
		if p := (home + i) % parts; !taken[p] {
			picked, taken[p] = append(picked, p), true
		}
	}
	return picked
}

func distinct(owners map[int32]string) int {
	seen := map[string]bool{}
	for _, o := range owners {
		seen[o] = true
	}
	return max(1, len(seen))
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
