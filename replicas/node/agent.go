// Package node is the node agent: it discovers this machine's GPUs,
// reports the node's capacity on the status topic, and runs the replicas
// the placer assigns to it, each pinned to its devices.
package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/replicas/gpu"
	"github.com/sluice-serve/sluice/streams"
)

// Runner runs what the node is assigned: processes pinned to devices
// (ProcessRunner) or the dev process's goroutines.
type Runner interface {
	// Set makes rs exactly what runs of t on this node; devs are the
	// node's devices, to turn a share's memory into a fraction.
	Set(t autoscaler.Target, rs []placement.Replica, devs []placement.Device)
	Size(t autoscaler.Target) autoscaler.Size
}

// Config configures an Agent.
type Config struct {
	Name    string // default: the host name
	Brokers []string
	Status  string // the status topic
	// Follow reads the node's assignment from the status topic: a node
	// joining a placer that runs elsewhere. Without it, the placer of
	// this process calls Apply.
	Follow bool
	// Discover finds the GPUs (default: NVML, gpu.Open).
	Discover func() gpu.Inventory
	// CPU and Memory are what the node offers replicas (default: every
	// core and the machine's memory; negative: none).
	CPU    float64
	Memory int64
	// ModelCache is where the node's replicas keep model weights; the
	// models found there are reported, so the placer prefers this node
	// for their deployments.
	ModelCache string
	Refresh    time.Duration // how often the node reports (default 10s)
	Runner     Runner
	Log        *slog.Logger
}

// Agent is one node's agent.
type Agent struct {
	cfg      Config
	instance string // this agent among any of the same name
	log      *streams.Log
	gpus     *gpu.Discoverer

	mu       sync.Mutex
	status   placement.NodeStatus
	targets  map[autoscaler.Target]bool // everything ever set, to clear
	sent     string                     // the status last published, without its time
	problem  string                     // the last GPU problem logged
	assigned []placement.Replica
}

// New discovers the node and connects to the status topic; Run reports.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Second
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "node-" + streams.Instance()
		}
		cfg.Name = h
	}
	a := &Agent{cfg: cfg, targets: map[autoscaler.Target]bool{}}
	if cfg.Discover == nil {
		a.gpus = gpu.Open()
		a.cfg.Discover = a.gpus.Discover
	}
	a.instance = streams.Instance()
	a.status = placement.NodeStatus{Node: placement.Node{Name: cfg.Name}, Refresh: cfg.Refresh, Instance: a.instance}
	a.discover()
	l, err := streams.OpenLog(ctx, streams.LogConfig{Brokers: cfg.Brokers, Topic: cfg.Status, Apply: a.follow, Log: cfg.Log})
	if err != nil {
		a.close()
		return nil, err
	}
	a.log = l
	return a, nil
}

// Name is the node's name.
func (a *Agent) Name() string { return a.cfg.Name }

// Run reports the node until ctx ends, then withdraws it.
func (a *Agent) Run(ctx context.Context) error {
	lctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.log.Run(lctx) }()
	defer func() {
		a.close()
		wctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = a.log.Client().ProduceSync(wctx, &kgo.Record{Topic: a.cfg.Status, Key: []byte(placement.NodeKey(a.cfg.Name))}).FirstErr()
		cancel()
		stop()
		<-done
	}()
	a.publish(true)
	refresh := time.NewTicker(a.cfg.Refresh)
	defer refresh.Stop()
	watch := time.NewTicker(500 * time.Millisecond) // what runs, published when it changes
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			a.discover()
			a.publish(true)
		case <-watch.C:
			a.mu.Lock()
			a.applyLocked(a.assigned) // again: what stopped or was replaced runs again
			a.mu.Unlock()
			a.publish(false)
		}
	}
}

// Node is the node's capacity as last discovered.
func (a *Agent) Node() placement.Node {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status.Node
}

// Status is the node as it reports itself now.
func (a *Agent) Status() placement.NodeStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.status
	st.Running = a.runningLocked()
	st.At = time.Now()
	return st
}

// Apply makes rs what the node runs; a target left out stops.
func (a *Agent) Apply(rs []placement.Replica) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.assigned = slices.Clone(rs)
	a.applyLocked(a.assigned)
}

func (a *Agent) applyLocked(rs []placement.Replica) {
	by := map[autoscaler.Target][]placement.Replica{}
	for _, r := range rs {
		by[r.Target] = append(by[r.Target], r)
		a.targets[r.Target] = true
	}
	for t := range a.targets {
		a.cfg.Runner.Set(t, by[t], a.status.Devices)
	}
}

// Size reports what the node runs of t.
func (a *Agent) Size(t autoscaler.Target) autoscaler.Size { return a.cfg.Runner.Size(t) }

// follow takes the node's assignment from the status topic, when the
// agent follows one.
func (a *Agent) follow(_ context.Context, rec *kgo.Record) {
	if name, st, ok := placement.ParseNode(string(rec.Key), rec.Value); ok && name == a.cfg.Name && st != nil &&
		st.Instance != a.instance && !st.Stale(time.Now()) {
		a.cfg.Log.Error("another node reports under this node's name: both would run the same replicas; give each a --name", "node", name)
	}
	if !a.cfg.Follow || string(rec.Key) != placement.PlaceKey(a.cfg.Name) {
		return
	}
	var as placement.Assignment
	if rec.Value != nil {
		if err := json.Unmarshal(rec.Value, &as); err != nil {
			a.cfg.Log.Warn("unreadable assignment; keeping what runs", "node", a.cfg.Name, "err", err)
			return
		}
	}
	a.Apply(as.Replicas)
}

// discover reads the GPUs, the node's capacity and its cached models.
func (a *Agent) discover() {
	inv := a.cfg.Discover()
	devs := inv.Placeable()
	node := placement.Node{Name: a.cfg.Name, CPU: a.cfg.CPU, Memory: a.cfg.Memory, GPUProblem: inv.Problem, Models: cachedModels(a.cfg.ModelCache)}
	if node.CPU == 0 {
		node.CPU = float64(runtime.NumCPU())
	}
	if node.Memory == 0 {
		node.Memory = machineMemory()
	}
	node.CPU, node.Memory = max(node.CPU, 0), max(node.Memory, 0)
	for _, d := range devs {
		node.Devices = append(node.Devices, placement.Device{UUID: d.UUID, Name: d.Name, Memory: d.MemoryTotal})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status.Node, a.status.Driver, a.status.GPUs = node, inv.Driver, inv.Devices
	switch {
	case len(devs) == 0 && inv.Problem != a.problem:
		a.cfg.Log.Info("node has no GPUs: replicas asking for one wait", "node", a.cfg.Name, "why", inv.Problem)
	case len(devs) > 0 && (inv.Problem != a.problem || a.problem == "" && len(a.status.Devices) == 0):
		a.cfg.Log.Info("node GPUs", "node", a.cfg.Name, "placeable", len(devs), "driver", inv.Driver, "problem", inv.Problem)
	}
	a.problem = inv.Problem
}

// publish reports the node when it changed, or always when forced (a
// refresh: the placer counts a silent node gone).
func (a *Agent) publish(force bool) {
	st := a.Status()
	st.At = time.Time{}
	b, _ := json.Marshal(st)
	a.mu.Lock()
	if !force && string(b) == a.sent {
		a.mu.Unlock()
		return
	}
	a.sent = string(b)
	a.mu.Unlock()
	st.At = time.Now()
	b, _ = json.Marshal(st)
	a.log.Client().Produce(context.Background(), &kgo.Record{Topic: a.cfg.Status, Key: []byte(placement.NodeKey(a.cfg.Name)), Value: b}, func(_ *kgo.Record, err error) {
		if err != nil {
			a.cfg.Log.Warn("node status not published", "node", a.cfg.Name, "err", err)
		}
	})
}

func (a *Agent) runningLocked() []placement.Running {
	var out []placement.Running
	for t := range a.targets {
		sz := a.cfg.Runner.Size(t)
		if sz.Current > 0 || sz.Problem != "" {
			out = append(out, placement.Running{Target: t, Current: sz.Current, Ready: sz.Ready, Problem: sz.Problem})
		}
	}
	slices.SortFunc(out, func(x, y placement.Running) int { return strings.Compare(x.Target.String(), y.Target.String()) })
	return out
}

func (a *Agent) close() {
	if a.gpus != nil {
		a.gpus.Close()
	}
}

// cachedModels lists the models with a complete download under dir
// (<…>/<model>/<version>/.complete, as the model cache lays them out).
func cachedModels(dir string) []string {
	if dir == "" {
		return nil
	}
	seen := map[string]bool{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == ".complete" {
			seen[filepath.Base(filepath.Dir(filepath.Dir(p)))] = true
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// machineMemory is the machine's memory in bytes (Linux), 0 if unknown.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
