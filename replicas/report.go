package replicas

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

// Report is what one replica runs and has done. Every replica publishes
// its own on the status topic (keyed by ReportKey), so any process that
// reads the topic — a standalone gateway, `sluice status`, a deploy
// waiting for a roll — sees every replica of every node.
type Report struct {
	App        string `json:"app"`
	Deployment string `json:"deployment"`
	Instance   string `json:"instance"`
	// Revision is the deployment's revision the replica runs;
	// Generation the application's spec generation it loaded.
	Revision   string `json:"revision"`
	Generation int64  `json:"generation"`
	// Ready: the replica holds partitions, or joined with none to hold.
	Ready        bool  `json:"ready"`
	Partitions   int   `json:"partitions"`
	Processed    int64 `json:"processed"`
	Failed       int64 `json:"failed"`
	Expired      int64 `json:"expired"`
	DeadLettered int64 `json:"dead_lettered"`
	Ongoing      int64 `json:"ongoing"`
	// Mirrored: answers of mirrored copies dropped (shadow traffic).
	// JoinsFired, JoinsTimedOut, JoinLate: a join's JoinStats.
	Mirrored      int64 `json:"mirrored,omitempty"`
	JoinsFired    int64 `json:"joins_fired,omitempty"`
	JoinsTimedOut int64 `json:"joins_timed_out,omitempty"`
	JoinLate      int64 `json:"join_late,omitempty"`
	JoinReplayed  int64 `json:"join_replayed,omitempty"`
	// HandlerP99 is the p99 of the handler's run time over the last
	// five to ten seconds, in seconds: the upper bound of the bucket of
	// LatencyBuckets that holds it; 0 when the handler did not run
	// then, -1 when it lies past the last bound.
	HandlerP99 float64   `json:"handler_p99_seconds,omitempty"`
	Started    time.Time `json:"started"`
	At         time.Time `json:"at"`
	// Metrics is where the replica's process serves /metrics (host:port);
	// empty when it serves none of its own (a goroutine of sluice dev,
	// scraped with its process's gateway).
	Metrics string `json:"metrics,omitempty"`
}

// ReportEvery is how often a replica's report is published unchanged; a
// report not renewed for three periods is a replica gone.
const ReportEvery = 5 * time.Second

const reportPrefix = "replica/"

// ReportKey is the status topic key of a replica's report.
func ReportKey(app, deployment, instance string) string {
	return reportPrefix + app + "/" + deployment + "/" + instance
}

// Report is the replica's report as of now.
func (r *Replica) Report() Report {
	st, js := r.Stats(), r.JoinStats()
	r.mu.Lock()
	rev, gen := r.cfg.Revision, r.cfg.Generation
	r.mu.Unlock()
	return Report{
		App: r.cfg.App, Deployment: r.cfg.Deployment, Instance: r.cfg.Instance,
		Revision: rev, Generation: gen,
		Ready: isClosed(r.ready), Partitions: st.Partitions,
		Processed: st.Processed, Failed: st.Failed, Expired: st.Expired, DeadLettered: st.DeadLettered, Ongoing: st.Ongoing,
		HandlerP99: r.handled.p99(time.Now()),
		Mirrored:   st.Mirrored, JoinsFired: js.Fired, JoinsTimedOut: js.TimedOut, JoinLate: js.Late, JoinReplayed: js.Replayed,
		Started: r.started.UTC(), At: time.Now().UTC(), Metrics: r.cfg.MetricsAddr,
	}
}

// SetRevision records that the replica now runs another revision of its
// deployment (a change it took in place, such as a new user_config).
func (r *Replica) SetRevision(revision string, generation int64) {
	r.mu.Lock()
	r.cfg.Revision, r.cfg.Generation = revision, generation
	changed := r.changed
	r.mu.Unlock()
	if changed != nil {
		changed()
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Publisher publishes the reports of a process's replicas on the status
// topic with one client: every ReportEvery, and soon (coalesced over
// 100 ms) after a replica's partitions change; a tombstone when one is
// removed.
type Publisher struct {
	cl   *kgo.Client
	poke chan struct{}

	mu   sync.Mutex // guards reps, and orders reports and tombstones
	reps map[*Replica]bool
}

// NewPublisher connects to the brokers; Run publishes.
func NewPublisher(ctx context.Context, brokers []string, topic string, log *slog.Logger) (*Publisher, error) {
	cl, err := streams.Dial(ctx, brokers, log, kgo.DefaultProduceTopic(topic))
	if err != nil {
		return nil, err
	}
	return &Publisher{cl: cl, poke: make(chan struct{}, 1), reps: map[*Replica]bool{}}, nil
}

// Add publishes r's reports from now on; call it before r.Run.
func (p *Publisher) Add(r *Replica) {
	p.mu.Lock()
	p.reps[r] = true
	p.mu.Unlock()
	r.mu.Lock()
	r.changed = p.Poke
	r.mu.Unlock()
	go func() { // a ready replica is reported at once, not at the next tick
		select {
		case <-r.ready:
			p.Poke()
		case <-time.After(time.Minute):
		}
	}()
	p.Poke()
}

// Remove stops publishing r's reports and withdraws them (a tombstone),
// bounded by ctx.
func (p *Publisher) Remove(ctx context.Context, r *Replica) {
	p.mu.Lock()
	defer p.mu.Unlock() // no report of r produced after its tombstone
	delete(p.reps, r)
	key := ReportKey(r.cfg.App, r.cfg.Deployment, r.cfg.Instance)
	_ = p.cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key)}).FirstErr()
}

// Poke asks for the reports soon; it never blocks.
func (p *Publisher) Poke() {
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, then closes the client.
func (p *Publisher) Run(ctx context.Context) {
	defer p.cl.Close()
	t := time.NewTicker(ReportEvery)
	defer t.Stop()
	for {
		p.publish(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.poke:
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}
}

func (p *Publisher) publish(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for r := range p.reps {
		rep := r.Report()
		b, err := json.Marshal(rep)
		if err != nil {
			continue
		}
		p.cl.Produce(ctx, &kgo.Record{Key: []byte(ReportKey(rep.App, rep.Deployment, rep.Instance)), Value: b}, nil)
	}
}

// Reports holds the latest report of every replica, read from the status
// topic; feed it with Apply.
type Reports struct {
	mu    sync.Mutex
	byKey map[string]Report
	now   func() time.Time
}

// NewReports returns an empty set.
func NewReports() *Reports { return &Reports{byKey: map[string]Report{}, now: time.Now} }

// Apply takes one status topic record; other records are ignored.
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

// Deployment returns the live reports (renewed within three periods) of
// one deployment's replicas, by instance.
func (rs *Reports) Deployment(app, deployment string) []Report {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	oldest := rs.now().Add(-3 * ReportEvery)
	var out []Report
	for _, rep := range rs.byKey {
		if rep.App == app && rep.Deployment == deployment && rep.At.After(oldest) {
			out = append(out, rep)
		}
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.Instance, b.Instance) })
	return out
}
