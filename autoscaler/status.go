package autoscaler

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Status is what the autoscaler knows of one deployment. It is published
// on the platform's status topic under StatusKey after every change of
// size and every few seconds, and shown by `sluice status`.
type Status struct {
	Target
	Min int `json:"min"`
	Max int `json:"max"`
	// Current and Ready are replicas started and replicas consuming
	// (members of the consumer group).
	Current int   `json:"current"`
	Ready   int   `json:"ready"`
	Lag     int64 `json:"lag"`
	// LagError is why the last lag read failed ("" when it did not).
	LagError string `json:"lag_error,omitempty"`
	// Problem is why replicas are not starting, from the actuator.
	Problem string `json:"problem,omitempty"`
	// Last is the latest decision, holds included; Changed the latest
	// that changed the size.
	Last    Decision  `json:"last"`
	Changed *Decision `json:"changed,omitempty"`
	// History holds the latest decisions that changed the size, newest last.
	History []Decision `json:"history,omitempty"`
	At      time.Time  `json:"at"`
}

const statusPrefix = "scale/"

// StatusKey is the status topic key of a deployment's autoscaler status.
func StatusKey(t Target) string { return statusPrefix + t.App + "/" + t.Deployment }

// Statuses follows autoscaler statuses on the status topic, for processes
// other than the autoscaler's (a gateway, `sluice status` through it).
type Statuses struct {
	mu  sync.Mutex
	all map[Target]Status
}

// NewStatuses returns an empty follower; feed it with Apply.
func NewStatuses() *Statuses { return &Statuses{all: map[Target]Status{}} }

// Apply takes one record of the status topic; records of other kinds are
// ignored, so it can share the topic's reader.
func (s *Statuses) Apply(_ context.Context, rec *kgo.Record) {
	key := string(rec.Key)
	if !strings.HasPrefix(key, statusPrefix) {
		return
	}
	app, dep, ok := strings.Cut(key[len(statusPrefix):], "/")
	if !ok {
		return
	}
	t := Target{App: app, Deployment: dep}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec.Value == nil {
		delete(s.all, t)
		return
	}
	var st Status
	if json.Unmarshal(rec.Value, &st) == nil {
		s.all[t] = st
	}
}

// Get returns the status of t, if one was published.
func (s *Statuses) Get(t Target) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.all[t]
	return st, ok
}
