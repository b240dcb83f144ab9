package models

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// Report is what one model-serving replica holds and has done; replicas
// publish theirs on the platform's status topic, keyed by ReportKey, and
// the gateway and `sluice status` read them.
//
// A model server's entries are "model/version"; a Python replica whose
// deployment multiplexes models (@serve.multiplexed, python/src/sluice/
// serve/multiplex.py) publishes the same report with the model ids it
// was called with ("iris", "iris@2"; an id never holds a '/').
type Report struct {
	App         string            `json:"app"`
	Deployment  string            `json:"deployment"`
	Replica     string            `json:"replica"`
	Loaded      []string          `json:"loaded"` // "model/version" or a model id, most recently used first
	Loading     []string          `json:"loading,omitempty"`
	Failed      map[string]string `json:"failed,omitempty"` // "model/version" or a model id: why
	MemoryBytes int64             `json:"memory_bytes"`
	Hits        int64             `json:"hits"`
	Misses      int64             `json:"misses"`
	Loads       int64             `json:"loads"`
	Evictions   int64             `json:"evictions"`
	Failures    int64             `json:"failures"`
	// Partitions the replica owns, by topic: the gateway spreads a hot
	// model over partitions of distinct replicas.
	Partitions map[string][]int32 `json:"partitions,omitempty"`
	At         time.Time          `json:"at"`
}

// ReportEvery is how often a replica republishes its report unchanged; a
// report not renewed for three periods is taken as a replica gone.
const ReportEvery = 5 * time.Second

const reportPrefix = "models/"

// ReportKey is the status topic key of a replica's report.
func ReportKey(app, deployment, replica string) string {
	return reportPrefix + app + "/" + deployment + "/" + replica
}

// Reporter publishes a cache's report: at once (coalesced) after every
// load, eviction or failure, and every ReportEvery.
type Reporter struct {
	cl    *kgo.Client
	topic string
	base  Report
	cache *Cache
	poke  chan struct{}
	done  chan struct{}
	stop  context.CancelFunc

	metrics *Metrics // exports the cache while the reporter runs (metrics.go)

	mu    sync.Mutex
	parts map[string][]int32
}

// SetPartitions records the partitions the replica owns and reports soon.
func (r *Reporter) SetPartitions(p map[string][]int32) {
	r.mu.Lock()
	r.parts = p
	r.mu.Unlock()
	r.Poke()
}

// NewReporter connects to the brokers; Run publishes.
func NewReporter(ctx context.Context, brokers []string, topic string, base Report, log *slog.Logger) (*Reporter, error) {
	cl, err := streams.Dial(ctx, brokers, log, kgo.DefaultProduceTopic(topic))
	if err != nil {
		return nil, err
	}
	return &Reporter{cl: cl, topic: topic, base: base, poke: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// Poke asks for a report soon; it never blocks. Give it to Config.OnChange.
func (r *Reporter) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Start publishes the cache's report until Close.
func (r *Reporter) Start(cache *Cache) {
	r.cache = cache
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.run(ctx)
}

func (r *Reporter) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(ReportEvery)
	defer t.Stop()
	for {
		r.publish(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.poke:
			select { // coalesce a burst of changes
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}
}

// Snapshot is the report as of now.
func (r *Reporter) Snapshot() Report {
	rep := r.base
	c := r.cache
	st := c.Stats()
	rep.Loaded, rep.Loading, rep.Failed, rep.MemoryBytes = c.Loaded(), c.Loading(), c.Failed(), c.MemoryBytes()
	rep.Hits, rep.Misses, rep.Loads, rep.Evictions, rep.Failures = st.Hits.Load(), st.Misses.Load(), st.Loads.Load(), st.Evictions.Load(), st.Failures.Load()
	r.mu.Lock()
	rep.Partitions = r.parts
	r.mu.Unlock()
	rep.At = time.Now().UTC()
	return rep
}

func (r *Reporter) publish(ctx context.Context) {
	b, err := json.Marshal(r.Snapshot())
	if err != nil {
		return
	}
	r.cl.Produce(ctx, &kgo.Record{Key: []byte(ReportKey(r.base.App, r.base.Deployment, r.base.Replica)), Value: b}, nil)
}

// Close stops publishing and removes the report (a tombstone), bounded by ctx.
func (r *Reporter) Close(ctx context.Context) {
	r.metrics.forget(r)
	if r.stop != nil {
		r.stop()
		<-r.done
	}
	key := []byte(ReportKey(r.base.App, r.base.Deployment, r.base.Replica))
	_ = r.cl.ProduceSync(ctx, &kgo.Record{Key: key}).FirstErr()
	r.cl.Close()
}

// Reports holds the latest report of every model-serving replica, read
// from the status topic.
type Reports struct {
	mu    sync.Mutex
	byKey map[string]Report
	now   func() time.Time
}

// NewReports returns an empty set; feed it with Apply.
func NewReports() *Reports {
	return &Reports{byKey: map[string]Report{}, now: time.Now}
}

// Apply takes one status topic record; records that are not model
// reports are ignored.
func (rs *Reports) Apply(_ context.Context, rec *kgo.Record) {
	key := string(rec.Key)
	if !strings.HasPrefix(key, reportPrefix) {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rec.Value == nil {
		delete(rs.byKey, key)
		return
	}
	var rep Report
	if json.Unmarshal(rec.Value, &rep) == nil {
		rs.byKey[key] = rep
	}
}

// live calls fn with every report renewed within the last three periods
// (older: a replica gone); rs.mu is held.
func (rs *Reports) live(fn func(Report)) {
	oldest := rs.now().Add(-3 * ReportEvery)
	for _, rep := range rs.byKey {
		if rep.At.After(oldest) {
			fn(rep)
		}
	}
}

// Deployment returns the live reports of one deployment's replicas, by replica.
func (rs *Reports) Deployment(app, deployment string) []Report {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []Report
	rs.live(func(rep Report) {
		if rep.App == app && rep.Deployment == deployment {
			out = append(out, rep)
		}
	})
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.Replica, b.Replica) })
	return out
}

// LoadedOn counts the live replicas of app that have model at version loaded.
func (rs *Reports) LoadedOn(app, model, version string) int {
	return rs.HoldingOn(app, model+"/"+version)
}

// FailedOn returns why model at version failed to load on a live replica
// of app, or "".
func (rs *Reports) FailedOn(app, model, version string) string {
	return rs.FailingOn(app, model+"/"+version)
}

// HoldingOn counts the live replicas of app whose reports list entry as
// loaded: "model/version" for a model server, a model id for a
// deployment that multiplexes models.
func (rs *Reports) HoldingOn(app, entry string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := 0
	rs.live(func(rep Report) {
		if rep.App == app && slices.Contains(rep.Loaded, entry) {
			n++
		}
	})
	return n
}

// FailingOn returns why entry (as HoldingOn) failed to load on a live
// replica of app, or "".
func (rs *Reports) FailingOn(app, entry string) string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	why := ""
	rs.live(func(rep Report) {
		if w, ok := rep.Failed[entry]; ok && rep.App == app && why == "" {
			why = w
		}
	})
	return why
}

// Owners maps each partition of topic owned by a live replica of app to
// the replica.
func (rs *Reports) Owners(app, topic string) map[int32]string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := map[int32]string{}
	rs.live(func(rep Report) {
		if rep.App == app {
			for _, p := range rep.Partitions[topic] {
				out[p] = rep.Replica
			}
		}
	})
	return out
}

// All returns every live report, by app, deployment and replica.
func (rs *Reports) All() []Report {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []Report
	rs.live(func(rep Report) { out = append(out, rep) })
	slices.SortFunc(out, func(a, b Report) int {
		return strings.Compare(a.App+"/"+a.Deployment+"/"+a.Replica, b.App+"/"+b.Deployment+"/"+b.Replica)
	})
	return out
}
