package placement

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/autoscaler"
)

// Follower keeps the node statuses and assignments of the status topic,
// for processes that show them (a gateway, `sluice status` through it).
type Follower struct {
	mu       sync.Mutex
	nodes    map[string]NodeStatus
	assigned map[string][]Replica // node → its replicas
}

// NewFollower returns an empty follower; feed it with Apply.
func NewFollower() *Follower {
	return &Follower{nodes: map[string]NodeStatus{}, assigned: map[string][]Replica{}}
}

// Apply takes one status topic record; other kinds are ignored.
func (f *Follower) Apply(_ context.Context, rec *kgo.Record) {
	key := string(rec.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if name, st, ok := ParseNode(key, rec.Value); ok {
		if st == nil {
			delete(f.nodes, name)
		} else {
			f.nodes[name] = *st
		}
		return
	}
	name, ok := strings.CutPrefix(key, placePrefix)
	if !ok {
		return
	}
	var a Assignment
	if rec.Value == nil || json.Unmarshal(rec.Value, &a) != nil || len(a.Replicas) == 0 {
		delete(f.assigned, name)
		return
	}
	f.assigned[name] = a.Replicas
}

// Nodes returns the nodes heard from lately, by name.
func (f *Follower) Nodes() []NodeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	var out []NodeStatus
	for _, st := range f.nodes {
		if !st.Stale(now) {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Replicas returns where t's replicas are placed, by ID.
func (f *Follower) Replicas(t autoscaler.Target) []Replica {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Replica
	for _, rs := range f.assigned {
		for _, r := range rs {
			if r.Target == t {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b Replica) int { return a.ID - b.ID })
	return out
}

// Placed sums what the assignments hold of each device: fraction and
// memory, by UUID.
func (f *Follower) Placed() map[string]Share {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Share{}
	for _, rs := range f.assigned {
		for _, r := range rs {
			for _, s := range r.Shares {
				t := out[s.UUID]
				t.UUID, t.Fraction, t.Memory = s.UUID, t.Fraction+s.Fraction, t.Memory+s.Memory
				out[s.UUID] = t
			}
		}
	}
	return out
}
