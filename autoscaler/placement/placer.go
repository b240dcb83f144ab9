package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/streams"
)

// Local is the agent of the placer's own node, reached directly rather
// than through the status topic.
type Local interface {
	// Node is the node's capacity, as last discovered (cheap: it is read
	// on every plan); Status adds what it runs, for display.
	Node() Node
	Status() NodeStatus
	Apply(rs []Replica)
	Size(t autoscaler.Target) autoscaler.Size
}

// PlacerConfig configures a Placer.
type PlacerConfig struct {
	Brokers []string
	Status  string // the status topic: node statuses in, assignments out
	Local   Local  // this process's node agent, if it runs one
	Log     *slog.Logger
	Now     func() time.Time
}

// Placer is the actuator of a cluster of nodes: the autoscaler asks it
// for n replicas of a deployment, it packs them onto the nodes that
// report (Pack) and publishes each node's assignment, which that node's
// agent runs. Replicas that fit nowhere wait, and Size says why.
type Placer struct {
	cfg PlacerConfig
	log *streams.Log

	mu    sync.Mutex
	reqs  map[autoscaler.Target]Request
	nodes map[string]NodeStatus // remote nodes, as last heard
	plan  Plan
	sent  map[string]string // node → the assignment last published
	local Node              // the local node at the last plan

	localName string // cfg.Local's node, whose records on the topic are its own
	ready     bool   // the status topic was read up to its end once
}

var _ autoscaler.Actuator = (*Placer)(nil)

// NewPlacer connects to the status topic; Run follows it.
func NewPlacer(ctx context.Context, cfg PlacerConfig) (*Placer, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Placer{cfg: cfg, reqs: map[autoscaler.Target]Request{}, nodes: map[string]NodeStatus{}, sent: map[string]string{}}
	if cfg.Local != nil {
		p.localName = cfg.Local.Node().Name
	}
	l, err := streams.OpenLog(ctx, streams.LogConfig{Brokers: cfg.Brokers, Topic: cfg.Status, Apply: p.apply, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	p.log = l
	return p, nil
}

// Run follows node statuses until ctx ends: the nodes known when it
// starts are read before anything is placed, and a node that stops
// reporting has its replicas placed elsewhere.
func (p *Placer) Run(ctx context.Context) error {
	go p.log.Run(ctx)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := p.log.Sync(sctx); err != nil {
		p.cfg.Log.Warn("placer: node statuses not read to the end; placing with what arrived", "err", err)
	}
	cancel()
	p.mu.Lock()
	p.ready = true
	p.replanLocked()
	p.mu.Unlock()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			p.mu.Lock()
			p.expireLocked()
			p.mu.Unlock()
		}
	}
}

// SetRequests sets what each deployment's replicas need (Request.Replicas
// is ignored: Scale sets it); deployments not listed are dropped.
func (p *Placer) SetRequests(reqs []Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make(map[autoscaler.Target]Request, len(reqs))
	for _, r := range reqs {
		r.Replicas = p.reqs[r.Target].Replicas
		next[r.Target] = r
	}
	p.reqs = next
	p.replanLocked()
}

// Scale asks for n replicas of t, placed at once where they fit.
func (p *Placer) Scale(_ context.Context, t autoscaler.Target, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.reqs[t]
	if !ok {
		r = Request{Target: t}
	}
	r.Replicas = max(n, 0)
	p.reqs[t] = r
	p.replanLocked()
	return nil
}

// Size reports t's replicas asked for as Current (placed or waiting for
// room), those the nodes run and find up as Ready, and why the rest wait
// or fail.
func (p *Placer) Size(_ context.Context, t autoscaler.Target) (autoscaler.Size, error) {
	p.mu.Lock()
	placed, pending := p.plan.Count(t)
	nodes := make(map[string]bool)
	for _, r := range p.plan.Replicas {
		if r.Target == t {
			nodes[r.Node] = true
		}
	}
	var problems []string
	ready := 0
	for name, st := range p.nodes {
		if !nodes[name] {
			continue
		}
		for _, r := range st.Running {
			if r.Target == t {
				ready += r.Ready
				if r.Problem != "" {
					problems = append(problems, name+": "+r.Problem)
				}
			}
		}
	}
	local := p.cfg.Local
	p.mu.Unlock()
	if local != nil && nodes[p.localName] {
		sz := local.Size(t)
		ready += sz.Ready
		if sz.Problem != "" {
			problems = append(problems, sz.Problem)
		}
	}
	slices.Sort(problems)
	if pending.Count > 0 {
		problems = append([]string{fmt.Sprintf("%d of %d replicas wait for room: %s", pending.Count, placed+pending.Count, pending.Reason)}, problems...)
	}
	// Waiting replicas count as starting: asked for, not yet running.
	return autoscaler.Size{Current: placed + pending.Count, Ready: min(ready, placed), Problem: strings.Join(problems, "; ")}, nil
}

// Plan returns the latest plan.
func (p *Placer) Plan() Plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plan
}

// Nodes returns the statuses of the nodes placed on, the local one first.
func (p *Placer) Nodes() []NodeStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []NodeStatus
	if p.cfg.Local != nil {
		out = append(out, p.cfg.Local.Status())
	}
	for _, n := range slices.Sorted(maps.Keys(p.nodes)) {
		out = append(out, p.nodes[n])
	}
	return out
}

// capacityLocked is what replicas are placed on: the local node first,
// then the others by name.
func (p *Placer) capacityLocked() []Node {
	var out []Node
	if p.cfg.Local != nil {
		out = append(out, p.cfg.Local.Node())
	}
	for _, n := range slices.Sorted(maps.Keys(p.nodes)) {
		out = append(out, p.nodes[n].Node)
	}
	return out
}

// apply takes one status topic record: node statuses and tombstones.
func (p *Placer) apply(_ context.Context, rec *kgo.Record) {
	name, st, ok := ParseNode(string(rec.Key), rec.Value)
	if !ok || (p.cfg.Local != nil && name == p.localName) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, had := p.nodes[name]
	switch {
	case st == nil || st.Stale(p.cfg.Now()):
		if !had {
			return
		}
		delete(p.nodes, name)
		p.cfg.Log.Info("node gone; placing its replicas elsewhere", "node", name)
	default:
		p.nodes[name] = *st
		if had && sameCapacity(prev.Node, st.Node) {
			return
		}
		if !had {
			p.cfg.Log.Info("node joined", "node", name, "gpus", len(st.Devices), "cpu", st.CPU, "gpu_problem", st.GPUProblem)
		}
	}
	p.replanLocked()
}

// expireLocked drops nodes not heard from for three refreshes, and
// places again when the local node changed (a GPU lost, a model cached).
func (p *Placer) expireLocked() {
	now, gone := p.cfg.Now(), false
	if p.cfg.Local != nil {
		if n := p.cfg.Local.Node(); !sameCapacity(n, p.local) {
			p.local, gone = n, true
		}
	}
	for name, st := range p.nodes {
		if st.Stale(now) {
			delete(p.nodes, name)
			p.cfg.Log.Warn("node silent; placing its replicas elsewhere", "node", name, "last_heard", st.At)
			gone = true
		}
	}
	if gone {
		p.replanLocked()
	}
}

// replanLocked packs the requests again, keeping what still fits where
// it is, and publishes the assignments that changed.
func (p *Placer) replanLocked() {
	if !p.ready {
		return
	}
	nodes := p.capacityLocked()
	if p.cfg.Local != nil {
		p.local = nodes[0]
	}
	reqs := make([]Request, 0, len(p.reqs))
	for _, r := range p.reqs {
		reqs = append(reqs, r)
	}
	p.plan = Pack(nodes, reqs, p.plan.Replicas)
	names := map[string]bool{}
	for _, n := range nodes {
		names[n.Name] = true
	}
	for n := range p.sent {
		names[n] = true
	}
	for n := range names {
		a := Assignment{Node: n, Replicas: p.plan.ForNode(n)}
		if a.Replicas == nil {
			a.Replicas = []Replica{}
		}
		b, _ := json.Marshal(a)
		if p.sent[n] == string(b) {
			continue
		}
		p.sent[n] = string(b)
		if p.cfg.Local != nil && n == p.localName {
			p.cfg.Local.Apply(a.Replicas)
		}
		p.log.Client().Produce(context.Background(), &kgo.Record{Topic: p.cfg.Status, Key: []byte(PlaceKey(n)), Value: b}, func(_ *kgo.Record, err error) {
			if err != nil {
				p.cfg.Log.Warn("assignment not published", "node", n, "err", err)
			}
		})
	}
}

func sameCapacity(a, b Node) bool {
	return a.CPU == b.CPU && a.Memory == b.Memory && a.GPUProblem == b.GPUProblem &&
		slices.Equal(a.Devices, b.Devices) && slices.Equal(a.Models, b.Models)
}
