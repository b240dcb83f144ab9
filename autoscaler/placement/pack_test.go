package placement

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/autoscaler"
)

const gib = 1 << 30

func tgt(d string) autoscaler.Target { return autoscaler.Target{App: "app", Deployment: d} }

// gpuNode is a node with devices GPU-0, GPU-1, … of the given GiB.
func gpuNode(name string, gibs ...int64) Node {
	n := Node{Name: name, CPU: 32, Memory: 256 * gib}
	for i, m := range gibs {
		n.Devices = append(n.Devices, Device{UUID: fmt.Sprintf("GPU-%d", i), Name: "NVIDIA L4", Memory: m * gib})
	}
	return n
}

func replica(p Plan, d string, id int) Replica {
	for _, r := range p.Replicas {
		if r.Target == tgt(d) && r.ID == id {
			return r
		}
	}
	return Replica{}
}

func wantShares(t *testing.T, p Plan, d string, id int, want ...Share) {
	t.Helper()
	if got := replica(p, d, id).Shares; !reflect.DeepEqual(got, want) {
		t.Errorf("%s/%d shares = %+v, want %+v", d, id, got, want)
	}
}

func wantPending(t *testing.T, p Plan, want ...Pending) {
	t.Helper()
	if !reflect.DeepEqual(p.Pending, want) {
		t.Errorf("pending = %+v\nwant      %+v", p.Pending, want)
	}
}

func TestPack(t *testing.T) {
	t.Parallel()
	half := Need{GPU: 0.5}
	halfOnGPU0 := []Replica{{Target: tgt("b"), Node: "node-a", Shares: []Share{{UUID: "GPU-0", Fraction: 0.5, Memory: 12 * gib}}}}
	noGPU := func(name, problem string) Node {
		return Node{Name: name, CPU: 8, Memory: 16 * gib, GPUProblem: problem}
	}
	for _, tc := range []struct {
		name  string
		nodes []Node
		reqs  []Request
		prev  []Replica
		check func(t *testing.T, p Plan)
	}{{
		name:  "two halves share a device",
		nodes: []Node{gpuNode("node-a", 24, 24)},
		reqs:  []Request{{Target: tgt("a"), Replicas: 1, Need: half}, {Target: tgt("b"), Replicas: 1, Need: half}},
		check: func(t *testing.T, p Plan) {
			wantShares(t, p, "a", 0, Share{UUID: "GPU-0", Fraction: 0.5, Memory: 12 * gib})
			wantShares(t, p, "b", 0, Share{UUID: "GPU-0", Fraction: 0.5, Memory: 12 * gib})
		},
	}, {
		name:  "a half and 0.6 take two devices",
		nodes: []Node{gpuNode("node-a", 24, 24)},
		reqs:  []Request{{Target: tgt("a"), Replicas: 1, Need: half}, {Target: tgt("b"), Replicas: 1, Need: Need{GPU: 0.6, GPUMemory: 8 * gib}}},
		check: func(t *testing.T, p Plan) {
			wantShares(t, p, "b", 0, Share{UUID: "GPU-0", Fraction: 0.6, Memory: 8 * gib})
			wantShares(t, p, "a", 0, Share{UUID: "GPU-1", Fraction: 0.5, Memory: 12 * gib})
		},
	}, {
		name:  "a whole GPU takes an empty device, not a half-used one",
		nodes: []Node{gpuNode("node-a", 24, 24)},
		reqs:  []Request{{Target: tgt("a"), Replicas: 1, Need: Need{GPU: 1}}, {Target: tgt("b"), Replicas: 1, Need: half}},
		prev:  halfOnGPU0,
		check: func(t *testing.T, p Plan) {
			wantShares(t, p, "a", 0, Share{UUID: "GPU-1", Fraction: 1, Memory: 24 * gib})
			wantShares(t, p, "b", 0, halfOnGPU0[0].Shares...)
		},
	}, {
		name:  "two whole GPUs wait on a node with one free",
		nodes: []Node{gpuNode("node-a", 24, 24)},
		reqs:  []Request{{Target: tgt("a"), Replicas: 1, Need: Need{GPU: 2}}, {Target: tgt("b"), Replicas: 1, Need: half}},
		prev:  halfOnGPU0,
		check: func(t *testing.T, p Plan) {
			wantPending(t, p, Pending{Target: tgt("a"), Count: 1, Reason: "needs 2 whole GPUs: no node has 2 free GPUs (node-a has 1)"})
		},
	}, {
		name:  "GPU memory larger than any device",
		nodes: []Node{gpuNode("node-a", 24), gpuNode("node-b", 16, 24)},
		reqs: []Request{
			{Target: tgt("a"), Replicas: 1, Need: Need{GPU: 0.5, GPUMemory: 40 * gib}},
			{Target: tgt("b"), Replicas: 2, Need: Need{GPU: 1, GPUMemory: 40 * gib}},
		},
		check: func(t *testing.T, p Plan) {
			wantPending(t, p,
				Pending{Target: tgt("a"), Count: 1, Reason: "needs gpu 0.5 and 40GiB GPU memory: the freest device is GPU-0 on node-a with 1 free and 24GiB free memory"},
				Pending{Target: tgt("b"), Count: 2, Reason: "needs 1 whole GPU and 40GiB GPU memory: no node has a free GPU of 40GiB (the largest is 24GiB, on node-a)"})
		},
	}, {
		name:  "prefers a node that caches the model",
		nodes: []Node{gpuNode("node-a", 24), {Name: "node-b", CPU: 4, Memory: 16 * gib, Devices: gpuNode("", 24).Devices, Models: []string{"llama"}}},
		reqs:  []Request{{Target: tgt("a"), Replicas: 1, Need: half, Model: "llama"}},
		check: func(t *testing.T, p Plan) {
			if n := replica(p, "a", 0).Node; n != "node-b" {
				t.Errorf("node = %q, want node-b", n)
			}
		},
	}, {
		name:  "spreads a target over nodes",
		nodes: []Node{gpuNode("node-a", 24), gpuNode("node-b", 24)},
		reqs:  []Request{{Target: tgt("a"), Replicas: 2, Need: Need{GPU: 0.25}}},
		check: func(t *testing.T, p Plan) {
			if a, b := replica(p, "a", 0).Node, replica(p, "a", 1).Node; a != "node-a" || b != "node-b" {
				t.Errorf("nodes = %q, %q, want node-a, node-b", a, b)
			}
		},
	}, {
		name: "cpu and memory are accounted",
		nodes: []Node{
			{Name: "node-a", CPU: 4, Memory: 8 * gib},
			{Name: "node-b", CPU: 2, Memory: 8 * gib},
			{Name: "node-c", Memory: 64 * gib}, // reports no cores
		},
		reqs: []Request{
			{Target: tgt("a"), Replicas: 4, Need: Need{CPU: 2, Memory: 2 * gib}},
			{Target: tgt("b"), Replicas: 1, Need: Need{Memory: 40 * gib}},
		},
		check: func(t *testing.T, p Plan) {
			for node, want := range map[string]int{"node-a": 2, "node-b": 1, "node-c": 1} {
				if got := len(p.ForNode(node)); got != want {
					t.Errorf("%s has %d replicas, want %d", node, got, want)
				}
			}
			if n := replica(p, "b", 0).Node; n != "node-c" {
				t.Errorf("b on %q, want node-c", n)
			}
			wantPending(t, p, Pending{Target: tgt("a"), Count: 1, Reason: "needs cpu 2 and 2GiB memory: the freest node is node-a with cpu 0 free"})
		},
	}, {
		name: "no nodes",
		reqs: []Request{{Target: tgt("a"), Replicas: 2, Need: half}},
		check: func(t *testing.T, p Plan) {
			wantPending(t, p, Pending{Target: tgt("a"), Count: 2, Reason: "no node reports: start `sluice node`"})
		},
	}, {
		name: "no node has a GPU",
		nodes: []Node{noGPU("node-a", "no NVIDIA driver"), noGPU("node-b", "NVML: insufficient permissions"),
			noGPU("node-c", ""), noGPU("node-d", "x"), noGPU("node-e", "y")},
		reqs: []Request{{Target: tgt("a"), Replicas: 1, Need: half}, {Target: tgt("b"), Replicas: 1, Need: Need{CPU: 1}}},
		check: func(t *testing.T, p Plan) {
			wantPending(t, p, Pending{Target: tgt("a"), Count: 1,
				Reason: "needs gpu 0.5: no node has a GPU (node-a: no NVIDIA driver; node-b: NVML: insufficient permissions; node-c: none reported; and 2 more)"})
			if n := replica(p, "b", 0).Node; n != "node-a" {
				t.Errorf("b on %q, want node-a", n)
			}
		},
	}, {
		name:  "short of memory",
		nodes: []Node{{Name: "node-a", CPU: 8, Memory: 16 * gib}, {Name: "node-b", CPU: 2, Memory: 4 * gib}},
		reqs:  []Request{{Target: tgt("a"), Replicas: 3, Need: Need{Memory: 8 * gib}}},
		check: func(t *testing.T, p Plan) {
			wantPending(t, p, Pending{Target: tgt("a"), Count: 1, Reason: "needs 8GiB memory: the freest node is node-b with 4GiB memory free"})
		},
	}, {
		name:  "short of all at once",
		nodes: []Node{{Name: "node-a", CPU: 1, Memory: 16 * gib, Devices: gpuNode("", 24).Devices}, {Name: "node-b", CPU: 8, Memory: 16 * gib}},
		reqs:  []Request{{Target: tgt("a"), Replicas: 1, Need: Need{GPU: 0.5, CPU: 2}}},
		check: func(t *testing.T, p Plan) {
			wantPending(t, p, Pending{Target: tgt("a"), Count: 1,
				Reason: "needs gpu 0.5 and cpu 2: no node has all of it free at once (node-a has cpu 1 and 16GiB memory free)"})
		},
	}, {
		name:  "no replicas asked",
		nodes: []Node{gpuNode("node-a", 24)},
		reqs:  []Request{{Target: tgt("a"), Replicas: 0, Need: half}, {Target: tgt("b"), Replicas: -1}},
		prev:  halfOnGPU0,
		check: func(t *testing.T, p Plan) {
			if !reflect.DeepEqual(p, Plan{}) {
				t.Errorf("plan = %+v, want none", p)
			}
		},
	}, {
		name:  "the first of nodes of one name counts",
		nodes: []Node{{Name: "node-a", CPU: 1}, {Name: "node-a", CPU: 8}},
		reqs:  []Request{{Target: tgt("a"), Replicas: 1, Need: Need{CPU: 2}}},
		check: func(t *testing.T, p Plan) {
			wantPending(t, p, Pending{Target: tgt("a"), Count: 1, Reason: "needs cpu 2: the freest node is node-a with cpu 1 free"})
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Pack(tc.nodes, tc.reqs, tc.prev)
			if err := checkPlan(tc.nodes, tc.reqs, p); err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

func TestPackKeeps(t *testing.T) {
	t.Parallel()
	nodes := []Node{gpuNode("node-a", 24, 24), gpuNode("node-b", 24, 24), gpuNode("node-c", 24, 24)}
	need := Need{GPU: 0.5, CPU: 1}
	ask := func(n int, need Need) []Request { return []Request{{Target: tgt("a"), Replicas: n, Need: need}} }
	on := func(id int, node, gpu string) Replica {
		return Replica{Target: tgt("a"), ID: id, Node: node, CPU: 1,
			Shares: []Share{{UUID: gpu, Fraction: 0.5, Memory: 12 * gib}}}
	}
	for _, tc := range []struct {
		name  string
		nodes []Node
		reqs  []Request
		prev  []Replica
		want  []Replica // nil: check only
		check func(t *testing.T, p Plan)
	}{{
		name:  "scaling up keeps the first replicas where they are",
		nodes: nodes,
		reqs:  ask(3, need),
		prev:  []Replica{on(0, "node-c", "GPU-1"), on(1, "node-c", "GPU-1")}, // not where Pack would put them
		want:  []Replica{on(0, "node-c", "GPU-1"), on(1, "node-c", "GPU-1"), on(2, "node-a", "GPU-0")},
	}, {
		name:  "scaling down drops the highest ID",
		nodes: nodes,
		reqs:  ask(2, need),
		prev:  Pack(nodes, ask(3, need), nil).Replicas,
		want:  Pack(nodes, ask(3, need), nil).Replicas[:2],
	}, {
		name:  "a lost node's replicas move, the others stay",
		nodes: []Node{nodes[0], nodes[2]},
		reqs:  ask(3, need),
		prev:  []Replica{on(0, "node-a", "GPU-0"), on(1, "node-b", "GPU-0"), on(2, "node-c", "GPU-0")},
		want:  []Replica{on(0, "node-a", "GPU-0"), on(1, "node-a", "GPU-0"), on(2, "node-c", "GPU-0")},
	}, {
		name:  "a lost device's replica moves",
		nodes: []Node{{Name: "node-a", CPU: 32, Memory: 256 * gib, Devices: nodes[0].Devices[1:]}},
		reqs:  ask(2, need),
		prev:  []Replica{on(0, "node-a", "GPU-0"), on(1, "node-a", "GPU-1")},
		want:  []Replica{on(0, "node-a", "GPU-1"), on(1, "node-a", "GPU-1")},
	}, {
		name:  "a replica that no longer fits moves",
		nodes: []Node{{Name: "node-a", CPU: 1, Memory: 8 * gib, Devices: nodes[0].Devices}, nodes[1]},
		reqs:  ask(2, need),
		prev:  []Replica{on(0, "node-a", "GPU-0"), on(1, "node-a", "GPU-0")},
		want:  []Replica{on(0, "node-a", "GPU-0"), on(1, "node-b", "GPU-0")},
	}, {
		name:  "a changed need places replicas again",
		nodes: nodes,
		reqs:  ask(3, Need{GPU: 0.5, GPUMemory: 8 * gib, CPU: 1}),
		prev:  Pack(nodes, ask(3, need), nil).Replicas,
		check: func(t *testing.T, p Plan) {
			for _, r := range p.Replicas {
				if r.Shares[0].Memory != 8*gib {
					t.Errorf("replica %d kept its shares %+v", r.ID, r.Shares)
				}
			}
		},
	}, {
		name:  "a replica in the wrong shape is placed again",
		nodes: nodes,
		reqs:  ask(2, Need{GPU: 2}),
		prev: []Replica{
			{Target: tgt("a"), ID: 0, Node: "node-a", Shares: []Share{{UUID: "GPU-0", Fraction: 1, Memory: 24 * gib}, {UUID: "GPU-0", Fraction: 1, Memory: 24 * gib}}},
			{Target: tgt("a"), ID: 1, Node: "node-c", Shares: []Share{{UUID: "GPU-0", Fraction: 1, Memory: 24 * gib}}},
			{Target: tgt("a"), ID: 1, Node: "node-b", Shares: []Share{{UUID: "GPU-1", Fraction: 1, Memory: 24 * gib}, {UUID: "GPU-0", Fraction: 1, Memory: 24 * gib}}},
			{Target: tgt("a"), ID: 7, Node: "node-c"},
		},
		want: []Replica{
			{Target: tgt("a"), ID: 0, Node: "node-a", Shares: []Share{{UUID: "GPU-0", Fraction: 1, Memory: 24 * gib}, {UUID: "GPU-1", Fraction: 1, Memory: 24 * gib}}},
			{Target: tgt("a"), ID: 1, Node: "node-b", Shares: []Share{{UUID: "GPU-1", Fraction: 1, Memory: 24 * gib}, {UUID: "GPU-0", Fraction: 1, Memory: 24 * gib}}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Pack(tc.nodes, tc.reqs, tc.prev)
			if err := checkPlan(tc.nodes, tc.reqs, p); err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !reflect.DeepEqual(p.Replicas, tc.want) {
				t.Errorf("replicas = %+v\nwant       %+v", p.Replicas, tc.want)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// TestPackOddInputs feeds what validation keeps out: Pack must not panic.
func TestPackOddInputs(t *testing.T) {
	t.Parallel()
	nodes := []Node{gpuNode("node-a", 24, 24), {Name: "node-b", CPU: math.NaN(), Memory: -1,
		Devices: []Device{{UUID: "GPU-0", Memory: -5}, {UUID: "GPU-0", Memory: 80 * gib}}}}
	for _, need := range []Need{
		{GPU: math.NaN()}, {GPU: -1}, {GPU: math.Inf(1)}, {GPU: 1.5}, {GPU: 0.5, GPUMemory: -1},
		{CPU: math.NaN()}, {CPU: -2, Memory: -3}, {CPU: math.Inf(1)}, {Memory: math.MaxInt64},
	} {
		reqs := []Request{{Target: tgt("a"), Replicas: 3, Need: need}}
		prev := []Replica{{Target: tgt("a"), ID: -1, Node: "node-a"}, {Target: tgt("a"), ID: 1, Node: "node-x"},
			{Target: tgt("a"), ID: 2, Node: "node-a", Shares: []Share{{UUID: "GPU-9", Fraction: 1}}}}
		p := Pack(nodes, reqs, prev)
		if placed, pending := p.Count(tgt("a")); placed+pending.Count != 3 {
			t.Errorf("need %+v: %d placed and %d pending, want 3", need, placed, pending.Count)
		}
	}
}

func TestPackDeterministic(t *testing.T) {
	t.Parallel()
	for seed := range 300 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		nodes, reqs, prev := randomCase(r)
		before := fmt.Sprintf("%+v %+v %+v", nodes, reqs, prev)
		p := Pack(nodes, reqs, prev)
		if after := fmt.Sprintf("%+v %+v %+v", nodes, reqs, prev); after != before {
			t.Fatalf("seed %d: Pack changed its input", seed)
		}
		if again := Pack(nodes, reqs, prev); !reflect.DeepEqual(again, p) {
			t.Fatalf("seed %d: two plans of one input:\n%+v\n%+v", seed, p, again)
		}
		for range 3 {
			r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
			r.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
			r.Shuffle(len(prev), func(i, j int) { prev[i], prev[j] = prev[j], prev[i] })
			if again := Pack(nodes, reqs, prev); !reflect.DeepEqual(again, p) {
				t.Fatalf("seed %d: shuffled input, other plan:\n%+v\n%+v", seed, p, again)
			}
		}
	}
}

func TestPackProperties(t *testing.T) {
	t.Parallel()
	for seed := range 2000 {
		nodes, reqs, prev := randomCase(rand.New(rand.NewPCG(uint64(seed), 2)))
		if err := checkCase(nodes, reqs, prev); err != nil {
			t.Fatalf("seed %d: %v\nnodes %+v\nrequests %+v\nprev %+v", seed, err, nodes, reqs, prev)
		}
		if err := checkCase(nodes, reqs, nil); err != nil {
			t.Fatalf("seed %d, no prev: %v\nnodes %+v\nrequests %+v", seed, err, nodes, reqs)
		}
	}
}

func FuzzPack(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x03\x02\x01\x08\x04\x00\x05\x06\x02\x03\x01\x07\x00\x02\x04\x01\x03"))
	f.Add([]byte("sluice packs replicas onto nodes and their GPUs, whole or in fractions"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, reqs, prev := randomCase(&byteSource{data})
		if err := checkCase(nodes, reqs, prev); err != nil {
			t.Fatalf("%v\nnodes %+v\nrequests %+v\nprev %+v", err, nodes, reqs, prev)
		}
	})
}

func BenchmarkPack(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	nodes := make([]Node, 100)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("node-%03d", i), CPU: 64, Memory: 512 * gib, Models: []string{pick(r, "m1", "m2", "m3")}}
		for j := range 8 {
			nodes[i].Devices = append(nodes[i].Devices, Device{UUID: fmt.Sprintf("GPU-%d", j), Memory: pick[int64](r, 24, 40, 80) * gib})
		}
	}
	reqs := make([]Request, 200)
	for i := range reqs {
		reqs[i] = Request{Target: tgt(fmt.Sprintf("d%03d", i)), Replicas: 1 + r.IntN(4), Need: randomNeed(r), Model: pick(r, "", "m1", "m2")}
	}
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			Pack(nodes, reqs, nil)
		}
	})
	prev := Pack(nodes, reqs, nil).Replicas
	b.Run("steady", func(b *testing.B) {
		for b.Loop() {
			Pack(nodes, reqs, prev)
		}
	})
}

// checkCase packs a case and checks the plan, and that packing it again
// changes nothing.
func checkCase(nodes []Node, reqs []Request, prev []Replica) error {
	p := Pack(nodes, reqs, prev)
	if err := checkPlan(nodes, reqs, p); err != nil {
		return err
	}
	if again := Pack(nodes, reqs, p.Replicas); !reflect.DeepEqual(again, p) {
		return fmt.Errorf("packing the plan again changed it:\n%+v\n%+v", p, again)
	}
	return nil
}

// checkPlan checks what every plan must hold: no device or node holds more
// than it has, a whole device is one replica's, every replica has what its
// need asks for under an ID of its own, and each requested replica is placed
// or pending.
func checkPlan(nodes []Node, reqs []Request, p Plan) error {
	byName := map[string]Node{}
	for _, n := range nodes {
		if _, ok := byName[n.Name]; !ok {
			byName[n.Name] = n
		}
	}
	want := map[autoscaler.Target]Request{}
	for _, r := range reqs {
		if _, ok := want[r.Target]; !ok {
			want[r.Target] = r
		}
	}
	if !slices.IsSortedFunc(p.Replicas, compareReplicas) {
		return errors.New("replicas not sorted")
	}
	type use struct {
		fraction float64
		memory   int64
		shares   int
		whole    bool
	}
	devices := map[[2]string]*use{}
	cpu, memory := map[string]float64{}, map[string]int64{}
	ids := map[autoscaler.Target]map[int]bool{}
	for _, r := range p.Replicas {
		req, ok := want[r.Target]
		if !ok || r.ID < 0 || r.ID >= req.Replicas || ids[r.Target][r.ID] {
			return fmt.Errorf("replica %v/%d: not asked for, or twice", r.Target, r.ID)
		}
		if ids[r.Target] == nil {
			ids[r.Target] = map[int]bool{}
		}
		ids[r.Target][r.ID] = true
		n, ok := byName[r.Node]
		if !ok {
			return fmt.Errorf("replica %v/%d: no node %q", r.Target, r.ID, r.Node)
		}
		if err := checkShares(n, req.Need, r); err != nil {
			return fmt.Errorf("replica %v/%d: %w", r.Target, r.ID, err)
		}
		cpu[r.Node] += r.CPU
		memory[r.Node] += r.Memory
		for _, s := range r.Shares {
			k := [2]string{r.Node, s.UUID}
			if devices[k] == nil {
				devices[k] = &use{}
			}
			u := devices[k]
			u.fraction += s.Fraction
			u.memory += s.Memory
			u.shares++
			u.whole = u.whole || s.Fraction == 1
		}
	}
	for k, u := range devices {
		i := slices.IndexFunc(byName[k[0]].Devices, func(d Device) bool { return d.UUID == k[1] })
		if u.fraction > 1+1e-9 || u.memory > byName[k[0]].Devices[i].Memory || u.whole && u.shares > 1 {
			return fmt.Errorf("device %s of %s holds %+v", k[1], k[0], *u)
		}
	}
	for name, c := range cpu {
		n := byName[name]
		if c > 0 && !(c <= n.CPU+1e-9) || memory[name] > 0 && memory[name] > n.Memory {
			return fmt.Errorf("node %s holds cpu %v and memory %d of %v and %d", name, c, memory[name], n.CPU, n.Memory)
		}
	}
	if !slices.IsSortedFunc(p.Pending, func(a, b Pending) int { return compareTargets(a.Target, b.Target) }) {
		return errors.New("pending not sorted")
	}
	pending := map[autoscaler.Target]int{}
	for _, q := range p.Pending {
		if pending[q.Target] > 0 || q.Count <= 0 || q.Reason == "" || strings.Contains(q.Reason, "\n") {
			return fmt.Errorf("pending %+v", q)
		}
		pending[q.Target] = q.Count
	}
	for t, q := range pending {
		if r := want[t]; len(ids[t])+q != r.Replicas {
			return fmt.Errorf("%v: %d placed and %d pending of %d", t, len(ids[t]), q, r.Replicas)
		}
	}
	for t, r := range want {
		if r.Replicas > 0 && len(ids[t])+pending[t] != r.Replicas {
			return fmt.Errorf("%v: %d placed and %d pending of %d", t, len(ids[t]), pending[t], r.Replicas)
		}
	}
	return nil
}

// checkShares checks that r on n has what need asks for.
func checkShares(n Node, need Need, r Replica) error {
	if r.CPU != max(need.CPU, 0) || r.Memory != max(need.Memory, 0) {
		return fmt.Errorf("cpu %v, memory %d for need %+v", r.CPU, r.Memory, need)
	}
	fraction := need.GPU > 0 && need.GPU < 1
	k := 0
	switch {
	case fraction:
		k = 1
	case need.GPU >= 1:
		k = int(need.GPU)
	}
	if len(r.Shares) != k {
		return fmt.Errorf("%d shares for gpu %v", len(r.Shares), need.GPU)
	}
	for i, s := range r.Shares {
		d := slices.IndexFunc(n.Devices, func(d Device) bool { return d.UUID == s.UUID })
		if d < 0 || slices.ContainsFunc(r.Shares[:i], func(o Share) bool { return o.UUID == s.UUID }) {
			return fmt.Errorf("share %+v: no such device, or twice", s)
		}
		want := Share{UUID: s.UUID, Fraction: 1, Memory: n.Devices[d].Memory}
		if fraction {
			want = Share{UUID: s.UUID, Fraction: need.GPU, Memory: cmp.Or(need.GPUMemory, int64(need.GPU*float64(n.Devices[d].Memory)))}
		} else if n.Devices[d].Memory < need.GPUMemory {
			return fmt.Errorf("share %+v: device smaller than %d", s, need.GPUMemory)
		}
		if s != want {
			return fmt.Errorf("share %+v, want %+v", s, want)
		}
	}
	return nil
}

// source draws the numbers of random cases: a *rand.Rand, or fuzz bytes.
type source interface{ IntN(n int) int }

// byteSource draws from fuzz bytes, then zeros.
type byteSource struct{ data []byte }

func (b *byteSource) IntN(n int) int {
	if len(b.data) == 0 {
		return 0
	}
	v := int(b.data[0]) % n
	b.data = b.data[1:]
	return v
}

func pick[T any](r source, xs ...T) T { return xs[r.IntN(len(xs))] }

// randomCase draws nodes and requests, packs them into prev, then changes
// the requests and may take a node away or shrink one, as time does.
func randomCase(r source) ([]Node, []Request, []Replica) {
	nodes := make([]Node, r.IntN(7))
	for i := range nodes {
		n := Node{Name: fmt.Sprintf("node-%d", i), CPU: pick[float64](r, 0, 2, 4, 8, 16, 32), Memory: pick[int64](r, 0, 8, 16, 64, 256) * gib}
		if r.IntN(4) == 0 {
			n.GPUProblem = pick(r, "", "no NVIDIA driver", "NVML: insufficient permissions")
		} else {
			for j := range r.IntN(9) {
				n.Devices = append(n.Devices, Device{UUID: fmt.Sprintf("GPU-%d", j), Memory: pick[int64](r, 8, 16, 24, 40, 80) * gib})
			}
		}
		for _, m := range []string{"m1", "m2"} {
			if r.IntN(3) == 0 {
				n.Models = append(n.Models, m)
			}
		}
		nodes[i] = n
	}
	reqs := make([]Request, r.IntN(9))
	for i := range reqs {
		reqs[i] = Request{Target: tgt(fmt.Sprintf("d%d", i)), Replicas: r.IntN(7) - 1, Need: randomNeed(r), Model: pick(r, "", "m1", "m2")}
	}
	prev := Pack(nodes, reqs, nil).Replicas
	for i := range reqs {
		switch r.IntN(4) {
		case 0:
			reqs[i].Replicas += r.IntN(5) - 2
		case 1:
			reqs[i].Need = randomNeed(r)
		}
	}
	if len(nodes) > 0 {
		switch i := r.IntN(len(nodes)); r.IntN(3) {
		case 0:
			nodes = slices.Delete(nodes, i, i+1)
		case 1:
			nodes[i].CPU /= 2
			nodes[i].Memory /= 2
		}
	}
	return nodes, reqs, prev
}

func randomNeed(r source) Need {
	n := Need{CPU: pick[float64](r, 0, 0.1, 0.5, 1, 2, 4), Memory: pick[int64](r, 0, 1, 4, 16) * gib}
	switch r.IntN(3) {
	case 0:
		n.GPU = pick(r, 0.1, 0.25, 0.3, 0.5, 0.75)
	case 1:
		n.GPU = pick[float64](r, 1, 2, 4)
	}
	if n.GPU > 0 && r.IntN(2) == 0 {
		n.GPUMemory = pick[int64](r, 2, 4, 8, 16, 48) * gib
	}
	return n
}
