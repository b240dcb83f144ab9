package gateway

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// partitionsOf returns the partition of each key, of parts.
func partitionsOf(keys [][]byte, parts int32) []int32 {
	out := make([]int32, len(keys))
	for i, k := range keys {
		out[i] = streams.KeyPartition(k, parts)
	}
	return out
}

// consecutive returns the n partitions from that of model on, wrapping.
func consecutive(model string, parts, n int32) []int32 {
	base := streams.KeyPartition([]byte(model), parts)
	out := make([]int32, n)
	for i := range n {
		out[i] = (base + i) % parts
	}
	return out
}

func TestSpreaderFixed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		model  string
		parts  int32
		fixed  int
		spread int32 // partitions the keys cycle over
	}{
		{"iris", 8, 1, 1},
		{"resnet-50", 1, 1, 1},
		{"iris", 8, 2, 2},
		{"iris", 8, 3, 3},
		{"resnet-50", 7, 4, 4},
		{"m", 7, 7, 7},
		{"iris", 8, 8, 8},
		{"iris", 4, 20, 4},     // never more than parts
		{"resnet-50", 1, 5, 1}, // one partition: the model name
		{"z", 1024, 16, 16},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d/%d", tc.model, tc.parts, tc.fixed), func(t *testing.T) {
			t.Parallel()
			sp := newSpreader()
			n := 3 * int(tc.spread)
			keys := make([][]byte, n)
			for i := range keys {
				keys[i] = sp.key(tc.model, tc.parts, tc.fixed, nil)
			}
			if tc.spread == 1 {
				for i, k := range keys {
					if string(k) != tc.model {
						t.Fatalf("key %d = %q, want the model name", i, k)
					}
				}
				return
			}
			if string(keys[0]) != tc.model {
				t.Errorf("first key = %q, want the model name", keys[0])
			}
			want := consecutive(tc.model, tc.parts, tc.spread)
			got := partitionsOf(keys, tc.parts)
			for i, p := range got {
				if w := want[i%int(tc.spread)]; p != w {
					t.Errorf("key %d %q on partition %d, want %d (partitions %v, want %v cycled)", i, keys[i], p, w, got, want)
				}
				if i >= int(tc.spread) && !bytes.Equal(keys[i], keys[i-int(tc.spread)]) {
					t.Errorf("key %d %q differs from key %d %q: keys do not cycle", i, keys[i], i-int(tc.spread), keys[i-int(tc.spread)])
				}
				if s := string(keys[i]); s != tc.model && !strings.HasPrefix(s, tc.model+"#") {
					t.Errorf("key %q is neither the model nor model#n", s)
				}
			}
			distinct := map[string]bool{}
			for _, k := range keys {
				distinct[string(k)] = true
			}
			if len(distinct) != int(tc.spread) {
				t.Errorf("%d distinct keys, want %d", len(distinct), tc.spread)
			}
		})
	}
}

// Models interleaved: each keeps its own round robin.
func TestSpreaderModelsIndependent(t *testing.T) {
	t.Parallel()
	sp := newSpreader()
	const parts = 8
	var a, b [][]byte
	for range 6 {
		a = append(a, sp.key("a", parts, 3, nil))
		b = append(b, sp.key("b", parts, 2, nil))
		sp.key("c", parts, 1, nil)
	}
	for _, tc := range []struct {
		model string
		keys  [][]byte
		n     int32
	}{{"a", a, 3}, {"b", b, 2}} {
		want := consecutive(tc.model, parts, tc.n)
		for i, p := range partitionsOf(tc.keys, parts) {
			if p != want[i%int(tc.n)] {
				t.Errorf("model %s key %d on partition %d, want %d", tc.model, i, p, want[i%int(tc.n)])
			}
		}
	}
}

// With spread 0, a model's spread follows its share of the last window's
// requests: share × replicas, rounded, at least 1 and at most parts. The
// replicas here own partitions round robin, so the picked partitions (one
// per replica) are the consecutive ones.
func TestSpreaderAutomatic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		parts    int32
		replicas int32
		counts   map[string]int // requests per model in the first window
		want     map[string]int32
	}{
		{"hot and rare", 8, 4, map[string]int{"hot": 60, "warm": 35, "rare": 5},
			map[string]int32{"hot": 2, "warm": 1, "rare": 1, "unseen": 1}}, // 2.4, 1.4, 0.2
		{"sixteen partitions", 16, 4, map[string]int{"hot": 60, "rare": 40},
			map[string]int32{"hot": 2, "rare": 2}}, // 2.4, 1.6
		{"three partitions", 3, 3, map[string]int{"hot": 60, "rare": 40},
			map[string]int32{"hot": 2, "rare": 1}}, // 1.8, 1.2
		{"all the traffic", 8, 4, map[string]int{"only": 100},
			map[string]int32{"only": 4}},
		{"one partition", 1, 1, map[string]int{"hot": 60, "rare": 40},
			map[string]int32{"hot": 1, "rare": 1}},
		{"many partitions", 1024, 8, map[string]int{"hot": 9999, "rare": 1},
			map[string]int32{"hot": 8, "rare": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			owners := roundRobin(tc.parts, tc.replicas)
			synctest.Test(t, func(t *testing.T) {
				sp := newSpreader()
				sp.window = 10 * time.Millisecond
				// The first window: interleave the models' requests; none
				// is spread yet, as there is no last window.
				left := maps.Clone(tc.counts)
				for len(left) > 0 {
					for _, m := range slices.Sorted(maps.Keys(left)) {
						if k := sp.key(m, tc.parts, 0, ownersFunc(owners)); string(k) != m {
							t.Fatalf("first window: key %q for %s, want the model name", k, m)
						}
						if left[m]--; left[m] == 0 {
							delete(left, m)
						}
					}
				}
				time.Sleep(11 * time.Millisecond)
				for _, m := range slices.Sorted(maps.Keys(tc.want)) {
					n := tc.want[m]
					keys := make([][]byte, 2*n)
					for i := range keys {
						keys[i] = sp.key(m, tc.parts, 0, ownersFunc(owners))
					}
					got := partitionsOf(keys, tc.parts)
					set := slices.Compact(slices.Sorted(slices.Values(got)))
					want := slices.Sorted(slices.Values(consecutive(m, tc.parts, n)))
					if !slices.Equal(set, want) {
						t.Errorf("model %s spread over partitions %v, want %v", m, set, want)
					}
					if n == 1 && !slices.ContainsFunc(keys, func(k []byte) bool { return string(k) == m }) {
						t.Errorf("model %s on one partition not keyed by its name: %q", m, keys)
					}
				}
			})
		})
	}
}

// The spread follows the last window only: a model that goes quiet for a
// window, and then has a small share, goes back to one partition.
func TestSpreaderWindowMoves(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const parts = 8
		owners := roundRobin(parts, parts)
		sp := newSpreader()
		sp.window = 10 * time.Millisecond
		for range 10 {
			sp.key("hot", parts, 0, ownersFunc(owners))
		}
		time.Sleep(11 * time.Millisecond)
		// Window 2: hot has all of window 1; it sends 1 in 10 now.
		seen := map[int32]bool{}
		for i := range 100 {
			if i%10 == 0 {
				seen[streams.KeyPartition(sp.key("hot", parts, 0, ownersFunc(owners)), parts)] = true
			} else {
				sp.key("other", parts, 0, ownersFunc(owners))
			}
		}
		if len(seen) != parts {
			t.Errorf("hot with all the traffic: %d partitions, want %d", len(seen), parts)
		}
		time.Sleep(11 * time.Millisecond)
		// Window 3: hot had 10% of window 2: 0.8 rounds to 1.
		for range 20 {
			if k := sp.key("hot", parts, 0, ownersFunc(owners)); string(k) != "hot" {
				t.Fatalf("hot with 10%% of the traffic got key %q, want its name", k)
			}
		}
	})
}

func ownersFunc(m map[int32]string) func() map[int32]string {
	return func() map[int32]string { return m }
}

// roundRobin is an assignment of parts partitions to n replicas, p to p mod n.
func roundRobin(parts, n int32) map[int32]string {
	out := map[int32]string{}
	for p := range parts {
		out[p] = fmt.Sprintf("r%d", p%n)
	}
	return out
}

// A spread model's extra partitions belong to replicas that do not hold
// it yet, whatever the assignment looks like; without owners, the next
// partitions.
func TestSpreadPartitions(t *testing.T) {
	t.Parallel()
	blocks := map[int32]string{0: "a", 1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "b", 7: "b"}
	tests := []struct {
		name        string
		home, parts int32
		n           int32
		owners      map[int32]string
		want        []int32
	}{
		{"blocks", 1, 8, 2, blocks, []int32{1, 4}},
		{"blocks wrap", 6, 8, 2, blocks, []int32{6, 0}},
		{"more than replicas", 1, 8, 3, blocks, []int32{1, 4, 2}},
		{"round robin", 2, 8, 3, roundRobin(8, 4), []int32{2, 3, 4}},
		{"no owners", 6, 8, 3, nil, []int32{6, 7, 0}},
		{"partly known", 0, 4, 3, map[int32]string{0: "a", 1: "a", 3: "b"}, []int32{0, 3, 1}},
		{"all", 5, 8, 8, blocks, []int32{5, 0, 6, 7, 1, 2, 3, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := spreadPartitions(tc.home, tc.parts, tc.n, tc.owners); !slices.Equal(got, tc.want) {
				t.Errorf("spreadPartitions(%d, %d, %d) = %v, want %v", tc.home, tc.parts, tc.n, got, tc.want)
			}
		})
	}
}

func TestKeyFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		model string
		parts int32
	}{
		{"iris", 1},
		{"iris", 2},
		{"iris", 7},
		{"resnet-50", 8},
		{"", 8},
		{"a.b_c", 64},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q/%d", tc.model, tc.parts), func(t *testing.T) {
			t.Parallel()
			for p := range tc.parts {
				k := keyFor(tc.model, tc.parts, p)
				if got := streams.KeyPartition(k, tc.parts); got != p {
					t.Errorf("keyFor(%q, %d, %d) = %q on partition %d", tc.model, tc.parts, p, k, got)
				}
				if !strings.HasPrefix(string(k), tc.model+"#") {
					t.Errorf("keyFor(%q, %d, %d) = %q, want %s#n", tc.model, tc.parts, p, k, tc.model)
				}
			}
		})
	}
}

func TestModelApps(t *testing.T) {
	t.Parallel()
	app := func(name string, parts int32, deps ...spec.Deployment) *spec.App {
		return &spec.App{Name: name, RoutePrefix: "/" + name, Ingress: deps[0].Name, Partitions: parts, Deployments: deps}
	}
	named := func(names ...string) *spec.ModelServing { return &spec.ModelServing{Names: names} }
	selector := &spec.ModelServing{Selector: map[string]string{"team": "vision"}}
	rt := func(a *spec.App) route { return route{app: a.Name, prefix: a.RoutePrefix, ingress: "in." + a.Name} }

	type want struct {
		app         string
		specificity int
		parts       int32
	}
	tests := []struct {
		name string
		apps []*spec.App
		want []want
	}{
		{"none", nil, nil},
		{"handlers only", []*spec.App{app("h", 8, spec.Deployment{Name: "H"})}, nil},
		{"model deployment not the ingress",
			[]*spec.App{app("h", 8, spec.Deployment{Name: "H"}, spec.Deployment{Name: "M", Kind: spec.KindModel, Model: named("x")})}, nil},
		{"ingress named after a later model deployment", []*spec.App{{
			Name: "late", RoutePrefix: "/late", Ingress: "M", Partitions: 4,
			Deployments: []spec.Deployment{{Name: "H"}, {Name: "M", Kind: spec.KindModel}},
		}}, []want{{"late", 0, 4}}},
		{"by specificity then name", []*spec.App{
			app("any-b", 8, spec.Deployment{Name: "M", Kind: spec.KindModel}),
			app("sel", 4, spec.Deployment{Name: "M", Kind: spec.KindModel, Model: selector}),
			app("handler", 8, spec.Deployment{Name: "H"}),
			app("named-b", 2, spec.Deployment{Name: "M", Kind: spec.KindModel, Model: named("b")}),
			app("any-a", 8, spec.Deployment{Name: "M", Kind: spec.KindModel, Model: &spec.ModelServing{Runtime: "onnx"}}),
			app("named-a", 16, spec.Deployment{Name: "M", Kind: spec.KindModel, Model: named("a", "b")}),
			app("inner", 8, spec.Deployment{Name: "H"}, spec.Deployment{Name: "M", Kind: spec.KindModel, Model: named("a")}),
		}, []want{{"named-a", 2, 16}, {"named-b", 2, 2}, {"sel", 1, 4}, {"any-a", 0, 8}, {"any-b", 0, 8}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := modelApps(tc.apps, rt)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d model apps %v, want %v", len(got), got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.app != w.app || g.serving == nil || g.serving.Specificity() != w.specificity || g.partitions != w.parts {
					t.Errorf("model app %d = %s (specificity %v, %d partitions), want %+v", i, g.app, g.serving, g.partitions, w)
					continue
				}
				if g.prefix != "/"+w.app || g.ingress != "in."+w.app {
					t.Errorf("model app %s has route %+v, not the one rt gives", w.app, g.route)
				}
			}
		})
	}
}

// A model deployment without a model block serves any model, through a
// serving of its own that is not the spec's nil.
func TestModelAppsAnyServing(t *testing.T) {
	t.Parallel()
	a := &spec.App{Name: "any", Ingress: "M", Partitions: 8, Deployments: []spec.Deployment{{Name: "M", Kind: spec.KindModel}}}
	got := modelApps([]*spec.App{a}, func(a *spec.App) route { return route{app: a.Name} })
	if len(got) != 1 || got[0].serving == nil || !got[0].serving.Serves("whatever") {
		t.Fatalf("modelApps = %+v, want one app serving any model", got)
	}
	if a.Deployments[0].Model != nil {
		t.Error("modelApps changed the spec")
	}
	named := &spec.ModelServing{Names: []string{"iris"}}
	a.Deployments[0].Model = named
	if got := modelApps([]*spec.App{a}, func(a *spec.App) route { return route{app: a.Name} }); got[0].serving != named {
		t.Error("modelApps does not use the deployment's own serving")
	}
}
