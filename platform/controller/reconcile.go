package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// ReconcilerConfig configures a Reconciler.
type ReconcilerConfig struct {
	Brokers []string
	Namer   streams.Namer
	Store   *appstore.Store
	// Outdated, when set, reports whether replicas of app still run a
	// revision other than its current ones (from their reports): topics
	// an upgrade stops using are retired only once none does.
	Outdated func(app string) bool
	// RetireTimeout bounds the wait before a retired topic's leftover
	// records are answered and the topic deleted; default 60s.
	RetireTimeout time.Duration
	Log           *slog.Logger
}

// Reconciler makes Kafka match the applications: every application's
// topics and consumer groups exist before anything runs them, and what
// a change stops using is retired. It then hands the applications to
// the actuators (OnApplied). Every topology runs it: `sluice dev`,
// `sluice node` and `sluice autoscaler`; a gateway only reads the store.
type Reconciler struct {
	cfg ReconcilerConfig
	cl  *kgo.Client
	adm *kadm.Client

	mu       sync.Mutex
	topos    map[string]*Topology
	hooks    []func(context.Context, []appstore.Applied)
	retiring sync.WaitGroup
	ctx      context.Context // ends retirements on Close
	cancel   context.CancelFunc

	// The actuators get the applications from a goroutine of their own,
	// the latest change first: a roll never holds up the apps topic (the
	// store's deploys and syncs) nor the topics of the next change.
	latest  chan []appstore.Applied // cap 1: what the actuators have not seen yet
	handMu  sync.Mutex
	handing sync.WaitGroup
}

// Bounds of the reconciler's admin requests.
const (
	topicsTimeout = 30 * time.Second
	retryTopics   = 2 * time.Second
)

// NewReconciler connects; Start subscribes it to the store.
func NewReconciler(ctx context.Context, cfg ReconcilerConfig) (*Reconciler, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RetireTimeout <= 0 {
		cfg.RetireTimeout = 60 * time.Second
	}
	cl, err := streams.Dial(ctx, cfg.Brokers, cfg.Log)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	return &Reconciler{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), topos: map[string]*Topology{}, ctx: rctx, cancel: cancel,
		latest: make(chan []appstore.Applied, 1)}, nil
}

// OnApplied registers fn to receive every application once its topics
// exist, after each change. Register before Start.
func (r *Reconciler) OnApplied(fn func(context.Context, []appstore.Applied)) {
	r.mu.Lock()
	r.hooks = append(r.hooks, fn)
	r.mu.Unlock()
}

// Start reconciles the store's applications now and after each change.
func (r *Reconciler) Start() {
	r.handing.Go(r.hand)
	r.cfg.Store.OnChange(r.changed)
}

// Close ends retirements in progress and closes the client.
func (r *Reconciler) Close() {
	r.cancel()
	r.handing.Wait()
	r.retiring.Wait()
	r.cl.Close()
}

// hand gives the actuators each latest set of applications, in order.
func (r *Reconciler) hand() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case apps := <-r.latest:
			r.mu.Lock()
			hooks := slices.Clone(r.hooks)
			r.mu.Unlock()
			for _, fn := range hooks {
				fn(r.ctx, apps)
			}
		}
	}
}

// offer replaces what the actuators have not seen yet with apps.
func (r *Reconciler) offer(apps []appstore.Applied) {
	r.handMu.Lock()
	defer r.handMu.Unlock()
	select {
	case <-r.latest:
	default:
	}
	r.latest <- apps
}

// createTopics creates topo's topics and seeds its groups, bounded; on
// failure it tries again in the background until it succeeds or the
// reconciler closes (a broker down at that moment must not leave an
// application without topics until its next change).
func (r *Reconciler) createTopics(app string, topo *Topology) {
	if r.tryTopics(app, topo) {
		return
	}
	r.retiring.Go(func() {
		for {
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(retryTopics):
			}
			if r.tryTopics(app, topo) {
				r.cfg.Log.Info("app topics created", "app", app)
				return
			}
		}
	})
}

func (r *Reconciler) tryTopics(app string, topo *Topology) bool {
	ctx, cancel := context.WithTimeout(r.ctx, topicsTimeout)
	defer cancel()
	if err := streams.CreateTopics(ctx, r.adm, topo.Topics()...); err != nil {
		if r.ctx.Err() == nil {
			r.cfg.Log.Error("app topics not created; trying again", "app", app, "err", err)
		}
		return false
	}
	// Seeding only speeds up a first answer: it runs beside the store's
	// apply, never in it. On a broker whose group coordinator is not up
	// yet each seed waits out its timeout, and a deploy waiting for its
	// record to be applied would wait for all of them.
	r.retiring.Go(func() { r.seed(topo) })
	return true
}

// seed seeds the offsets of topo's groups, bounded.
func (r *Reconciler) seed(topo *Topology) {
	ctx, cancel := context.WithTimeout(r.ctx, topicsTimeout)
	defer cancel()
	for _, dt := range topo.Deployments {
		if err := seedOffsets(ctx, r.adm, dt.Group, dt.Inputs); err != nil && r.ctx.Err() == nil {
			r.cfg.Log.Warn("group offsets not seeded", "group", dt.Group, "err", err)
		}
	}
}

func (r *Reconciler) changed(apps []appstore.Applied) {
	next := make(map[string]*Topology, len(apps))
	for _, a := range apps {
		topo := Compile(r.cfg.Namer, a.Spec)
		next[a.Spec.Name] = topo
		r.mu.Lock()
		prev := r.topos[a.Spec.Name]
		r.mu.Unlock()
		if prev == nil || prev.names() != topo.names() {
			r.createTopics(a.Spec.Name, topo)
		}
	}
	r.mu.Lock()
	prev := r.topos
	r.topos = next
	r.mu.Unlock()
	r.offer(apps)
	for name, old := range prev {
		if g := old.retired(next[name]); len(g.topics) > 0 || len(g.groups) > 0 {
			r.retiring.Go(func() { r.retire(name, old, g, next[name] == nil) })
		}
	}
}

// names is the topology's topics with their partitions and its groups
// with their inputs, as one comparable string.
func (t *Topology) names() string {
	var ns []string
	for _, s := range t.Topics() {
		ns = append(ns, fmt.Sprintf("%s/%d", s.Name, s.Partitions))
	}
	for _, d := range t.Deployments {
		ns = append(ns, d.Group+"<"+strings.Join(d.Inputs, ","))
	}
	slices.Sort(ns)
	return strings.Join(ns, " ")
}

// retirement is what a change stops using.
type retirement struct {
	topics []string
	groups []string
}

// retired is what t uses and next does not (everything when next is nil).
func (t *Topology) retired(next *Topology) retirement {
	var g retirement
	keep := map[string]bool{}
	keepGroup := map[string]bool{}
	if next != nil {
		for _, s := range next.Topics() {
			keep[s.Name] = true
		}
		for _, d := range next.Deployments {
			keepGroup[d.Group] = true
		}
	}
	for _, s := range t.Topics() {
		if !keep[s.Name] {
			g.topics = append(g.topics, s.Name)
		}
	}
	for _, d := range t.Deployments {
		if !keepGroup[d.Group] {
			g.groups = append(g.groups, d.Group)
		}
	}
	return g
}

// ErrRetired is the error of a request still on its way to a deployment
// that a change removed.
var ErrRetired = errors.New("removed while the request was on its way")

// retire waits (bounded) until nothing reads or writes what g names any
// more — the retired groups have no members and no replica of the
// application runs an outdated revision — then answers every record left
// unread in the retired topics with an error naming the change (dead
// letters when nobody waits), and deletes the topics and groups.
func (r *Reconciler) retire(app string, old *Topology, g retirement, gone bool) {
	// Replicas of an outdated revision still serve while their roll has
	// not finished (or failed: the old revision keeps serving); their
	// topics stay as long as they do. The retired groups' members get
	// RetireTimeout to leave.
	deadline := time.Now().Add(r.cfg.RetireTimeout)
	for r.ctx.Err() == nil {
		outdated := !gone && r.cfg.Outdated != nil && r.cfg.Outdated(app)
		if !outdated && (time.Now().After(deadline) || r.quiet(r.ctx, g.groups)) {
			break
		}
		if outdated {
			deadline = time.Now().Add(r.cfg.RetireTimeout)
		}
		select {
		case <-r.ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if r.ctx.Err() != nil {
		return
	}
	wctx, wcancel := context.WithTimeout(r.ctx, topicsTimeout)
	defer wcancel()
	answered := 0
	for _, topic := range g.topics {
		for dep, dt := range old.Deployments {
			if slices.Contains(dt.Inputs, topic) {
				n, err := r.answerLeft(wctx, old, dt.Group, topic, dep, gone)
				answered += n
				if err != nil {
					r.cfg.Log.Warn("records left in a retired topic not answered", "app", app, "topic", topic, "err", err)
				}
			}
		}
	}
	dctx, dcancel := context.WithTimeout(r.ctx, topicsTimeout) // not what answering used up
	defer dcancel()
	if err := streams.DeleteTopics(dctx, r.adm, g.topics...); err != nil {
		r.cfg.Log.Warn("app topics not deleted", "app", app, "err", err)
	}
	if len(g.groups) > 0 {
		if _, err := r.adm.DeleteGroups(dctx, g.groups...); err != nil {
			r.cfg.Log.Warn("app groups not deleted", "app", app, "err", err)
		}
	}
	r.cfg.Log.Info("retired what the application no longer uses", "app", app, "topics", len(g.topics), "groups", len(g.groups), "answered", answered)
}

// quiet reports whether the retired groups have no members.
func (r *Reconciler) quiet(ctx context.Context, groups []string) bool {
	if len(groups) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	described, err := r.adm.DescribeGroups(ctx, groups...)
	if err != nil {
		return false
	}
	for _, d := range described {
		if d.Err == nil && len(d.Members) > 0 {
			return false
		}
	}
	return true
}

// answerLeft answers the records of topic that group has not done.
func (r *Reconciler) answerLeft(ctx context.Context, old *Topology, group, topic, dep string, gone bool) (int, error) {
	committed, err := r.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	starts, err := r.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	from := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		at := int64(0)
		if s, ok := starts.Lookup(topic, e.Partition); ok {
			at = s.Offset
		}
		if c, ok := committed.Lookup(topic, e.Partition); ok && c.At > at {
			at = c.At
		}
		if e.Offset > at {
			from[e.Partition] = kgo.NewOffset().At(at)
			left[e.Partition] = e.Offset
		}
	})
	if len(from) == 0 {
		return 0, nil
	}
	cl, err := streams.Dial(ctx, r.cfg.Brokers, r.cfg.Log, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	msg := "deployment " + dep + " was removed or rewired by a change of its application while the request was on its way"
	if gone {
		msg = "the application of deployment " + dep + " was deleted while the request was on its way"
	}
	cause := &streams.Error{Code: streams.CodeUnavailable, Msg: msg, Err: ErrRetired}
	n := 0
	for len(left) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		var out []*kgo.Record
		fs.EachRecord(func(rec *kgo.Record) {
			if end, ok := left[rec.Partition]; ok && rec.Offset+1 >= end {
				delete(left, rec.Partition)
			}
			env, err := protocol.ParseEnvelope(rec.Headers)
			switch {
			case err == nil && env.ReplyTo != "":
				r := protocol.ErrorReply(&env, cause.Code, cause.Error())
				out = append(out, r.Record())
			case !gone:
				d := protocol.NewDeadLetter(old.DeadLetter, rec, dep, cause.Code, cause.Error())
				out = append(out, d.Record())
			}
		})
		if len(out) > 0 {
			if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
				return n, err
			}
			n += len(out)
		}
	}
	return n, ctx.Err()
}
