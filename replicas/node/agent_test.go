package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/replicas/gpu"
	"github.com/sluice-serve/sluice/streams"
)

const gib = int64(1) << 30

// recorder is a Runner that keeps what it is told to run.
type recorder struct {
	mu  sync.Mutex
	set map[autoscaler.Target][]placement.Replica
}

func (r *recorder) Set(t autoscaler.Target, rs []placement.Replica, _ []placement.Device) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil {
		r.set = map[autoscaler.Target][]placement.Replica{}
	}
	r.set[t] = slices.Clone(rs)
}

func (r *recorder) Size(t autoscaler.Target) autoscaler.Size {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.set[t])
	return autoscaler.Size{Current: n, Ready: n}
}

func (r *recorder) running(t autoscaler.Target) []placement.Replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set[t]
}

// inventory is a Discover whose answer a test changes mid-run.
type inventory struct {
	mu  sync.Mutex
	inv gpu.Inventory
}

func (i *inventory) discover() gpu.Inventory {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.inv
}

func (i *inventory) setProblem(uuid, problem string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for k := range i.inv.Devices {
		if i.inv.Devices[k].UUID == uuid {
			i.inv.Devices[k].Problem = problem
		}
	}
}

func gpus(uuids ...string) *inventory {
	inv := gpu.Inventory{Driver: "test"}
	for i, u := range uuids {
		inv.Devices = append(inv.Devices, gpu.Device{Index: i, MIGIndex: -1, UUID: u, Name: "test GPU", MemoryTotal: 80 * gib, MemoryFree: 80 * gib})
	}
	return &inventory{inv: inv}
}

type cluster struct {
	t       *testing.T
	brokers []string
	status  string
}

func newCluster(t *testing.T) *cluster {
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return &cluster{t: t, brokers: e.Brokers(), status: "status-" + streams.Instance()}
}

// node starts an agent; it stops (and withdraws itself) when stop is
// called or the test ends.
func (c *cluster) node(name string, inv *inventory, follow bool) (a *Agent, r *recorder, stop func()) {
	c.t.Helper()
	r = &recorder{}
	a, err := New(context.Background(), Config{
		Name: name, Brokers: c.brokers, Status: c.status, Follow: follow, Discover: inv.discover,
		CPU: 8, Memory: 32 * gib, Refresh: 500 * time.Millisecond, Runner: r, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	c.t.Cleanup(stop)
	return a, r, stop
}

func (c *cluster) placer(local *Agent) *placement.Placer {
	c.t.Helper()
	p, err := placement.NewPlacer(context.Background(), placement.PlacerConfig{Brokers: c.brokers, Status: c.status, Local: local, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	return p
}

func eventually(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		good, last := ok()
		if good {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s; last: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	big  = autoscaler.Target{App: "a", Deployment: "big"}
	half = autoscaler.Target{App: "a", Deployment: "half"}
	cpu  = autoscaler.Target{App: "a", Deployment: "cpu"}
)

func sizeOf(p *placement.Placer, t autoscaler.Target) autoscaler.Size {
	sz, _ := p.Size(context.Background(), t)
	return sz
}

// Two nodes: the placing one (one GPU) and one that joins (two GPUs).
// Whole and half GPUs are packed over both without sharing a device
// beyond its capacity; the joining node runs its part from the status
// topic, pinned by UUID; when it leaves, its replicas come back to the
// first node where they fit and the rest wait with the reason.
func TestTwoNodesPlaceAndReplace(t *testing.T) {
	c := newCluster(t)
	local, localRun, _ := c.node("n1", gpus("GPU-1a"), false)
	p := c.placer(local)
	_, remoteRun, stopRemote := c.node("n2", gpus("GPU-2a", "GPU-2b"), true)
	eventually(t, "the placer hears of n2", func() (bool, string) {
		return len(p.Nodes()) == 2, strings.Repeat("node ", len(p.Nodes()))
	})

	p.SetRequests([]placement.Request{
		{Target: big, Need: placement.Need{GPU: 1}},
		{Target: half, Need: placement.Need{GPU: 0.5, GPUMemory: 20 * gib}},
		{Target: cpu, Need: placement.Need{CPU: 2}},
	})
	ctx := context.Background()
	// Whole GPUs first: placement does not move replicas to make room, so
	// halves placed first may leave no whole device for the second.
	for _, t2 := range []autoscaler.Target{big, half, cpu} {
		if err := p.Scale(ctx, t2, 2); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every replica runs", func() (bool, string) {
		n := len(localRun.running(big)) + len(remoteRun.running(big)) + len(localRun.running(half)) + len(remoteRun.running(half))
		return n == 4, fmt.Sprintf("big %d+%d half %d+%d %q %+v", len(localRun.running(big)), len(remoteRun.running(big)), len(localRun.running(half)), len(remoteRun.running(half)), sizeOf(p, half).Problem, p.Plan())
	})
	used := map[string]float64{}
	for _, r := range append(append(localRun.running(big), remoteRun.running(big)...), append(localRun.running(half), remoteRun.running(half)...)...) {
		for _, s := range r.Shares {
			used[s.UUID] += s.Fraction
		}
	}
	for uuid, f := range used {
		if f > 1+1e-9 {
			t.Fatalf("device %s holds %v of itself: %v", uuid, f, used)
		}
	}
	if len(used) != 3 {
		t.Fatalf("two whole and two halves need the three devices: %v", used)
	}
	for _, r := range remoteRun.running(big) {
		if env := strings.Join(r.Env(nil), " "); !strings.Contains(env, gpu.EnvCUDA+"=GPU-2") {
			t.Fatalf("a replica on n2 is pinned to n2's devices: %s", env)
		}
	}
	eventually(t, "both nodes report big's replicas ready", func() (bool, string) {
		sz := sizeOf(p, big)
		return sz.Current == 2 && sz.Ready == 2 && sz.Problem == "", fmt.Sprintf("%+v", sz)
	})

	stopRemote() // withdraws n2
	eventually(t, "n2's replicas come back to n1 or wait", func() (bool, string) {
		sz := sizeOf(p, big)
		return len(p.Nodes()) == 1 && sz.Current == 2 && sz.Ready == 1 && strings.Contains(sz.Problem, "1 of 2 replicas wait for room"), sz.Problem
	})
	if n := len(localRun.running(big)) + len(localRun.running(half)); n != 1 && n != 2 {
		t.Fatalf("n1 runs %d GPU replicas on one device", n)
	}
	if got := len(localRun.running(cpu)); got != 2 {
		t.Fatalf("n1 runs %d of the CPU replicas, want both (8 cores)", got)
	}
}

// A node without GPUs says why; GPU replicas wait with that reason, the
// rest runs. A GPU lost mid-run moves its replicas.
func TestNoGPUsAndLostGPU(t *testing.T) {
	c := newCluster(t)
	none := &inventory{inv: gpu.Inventory{Problem: "no NVIDIA driver: libnvidia-ml.so.1 not found (NVML); this node has no GPUs"}}
	local, run, _ := c.node("cpu-only", none, false)
	p := c.placer(local)
	p.SetRequests([]placement.Request{{Target: half, Need: placement.Need{GPU: 0.5}}, {Target: cpu}})
	_ = p.Scale(context.Background(), half, 1)
	_ = p.Scale(context.Background(), cpu, 3)
	eventually(t, "the GPU replica waits, the others run", func() (bool, string) {
		sz := sizeOf(p, half)
		return len(run.running(cpu)) == 3 && sz.Current == 1 && sz.Ready == 0 && len(run.running(half)) == 0 && strings.Contains(sz.Problem, "libnvidia-ml.so.1 not found"), sz.Problem
	})

	inv := gpus("GPU-a", "GPU-b")
	local2, run2, _ := c.node("gpu", inv, false)
	p2 := c.placer(local2)
	p2.SetRequests([]placement.Request{{Target: half, Need: placement.Need{GPU: 0.5}}})
	_ = p2.Scale(context.Background(), half, 2)
	eventually(t, "two halves on one device", func() (bool, string) {
		rs := run2.running(half)
		return len(rs) == 2 && rs[0].Shares[0].UUID == rs[1].Shares[0].UUID, "" // packed together
	})
	was := run2.running(half)[0].Shares[0].UUID
	other := map[string]string{"GPU-a": "GPU-b", "GPU-b": "GPU-a"}[was]
	inv.setProblem(was, "memory info: GPU is lost")
	eventually(t, "replicas leave the lost GPU", func() (bool, string) {
		rs := run2.running(half)
		return len(rs) == 2 && rs[0].Shares[0].UUID == other && rs[1].Shares[0].UUID == other, ""
	})
}

// The models a node reports are those with a complete download in its
// cache, wherever a replica's directory put them.
func TestCachedModels(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/d/0/resnet/3/.complete", "a/d/1/resnet/4/.complete", "b/e/0/bert/1/.complete", "b/e/0/gpt/1/weights.bin"} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := cachedModels(dir); !slices.Equal(got, []string{"bert", "resnet"}) {
		t.Fatalf("cached models %v, want [bert resnet] (gpt is not complete)", got)
	}
	if got := cachedModels(""); got != nil {
		t.Fatalf("no cache: %v", got)
	}
	if m := machineMemory(); m < 64<<20 {
		t.Fatalf("this machine's memory read as %d bytes", m)
	}
}
