package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/streams"
)

// Config configures a controller.
type Config struct {
	Brokers      []string
	Namer        streams.Namer
	Registry     *serve.Registry
	Caller       *streams.Caller // handle calls of the replicas it starts
	Log          *slog.Logger
	DrainTimeout time.Duration // per replica on stop; default 20s
	// WatchOnly follows the apps topic without running anything: no
	// topics created, no replicas. A standalone gateway uses it for routes.
	WatchOnly bool
	// TopicsOnly creates and deletes applications' topics and groups but
	// runs no replicas: `sluice node` and `sluice autoscaler`, whose
	// replicas are processes or pods.
	TopicsOnly bool
	// Held, when set and true for a deployment, starts none of its
	// replicas at deploy: the actuator starts them once they are placed
	// (GPU replicas of `sluice dev`, which may have no room).
	Held func(spec.Deployment) bool
	// Models builds the handlers of `kind: model` deployments; nil: this
	// process serves none (their replicas report why).
	Models ModelBuilder
	// Reports, when set, adds what model replicas hold to Status.
	Reports *models.Reports
	// Scaling, when set, adds the autoscaler's status to Status.
	Scaling func(autoscaler.Target) (autoscaler.Status, bool)
	// Placements, when set, adds where the placer put each replica.
	Placements func(autoscaler.Target) []placement.Replica
}

// ModelBuilder builds the handler of one replica of a model deployment.
type ModelBuilder interface {
	Build(ctx context.Context, app *spec.App, d spec.Deployment) (replicas.Handler, error)
}

// ErrNoModelServing is returned for a model deployment in a process that
// was given no model registry.
var ErrNoModelServing = errors.New("this process has no model registry to serve model deployments from")

// Controller stores application specs on the compacted apps topic (the
// system of record: a restarted platform rebuilds from it) and reconciles
// each one into topics, groups and replicas running in this process.
type Controller struct {
	cfg Config
	log *streams.Log
	adm *kadm.Client

	mu       sync.Mutex
	apps     map[string]*appRun
	onChange []func([]*spec.App)
	draining sync.WaitGroup // replicas stopped by a scale down
	// slots holds the replica slots (instance IDs) in use per group: a
	// slot is taken at start and freed once the replica left its group,
	// so a replica started while another drains, or a new version's
	// while the old one's run, never shares its ID.
	slots map[string]map[int]bool
}

type appRun struct {
	spec *spec.App
	topo *Topology
	deps map[string]*depRun
}

type depRun struct {
	spec     spec.Deployment
	replicas []*replicaRun
	err      error // why replicas could not start

	// Scaling (under Controller.mu): the size asked for, whether a resize
	// pass runs, and the backoff of failed starts.
	want     int
	resizing bool
	failures int
	retryAt  time.Time
	retired  bool // the deployment was replaced or deleted
}

type replicaRun struct {
	rep    *replicas.Replica
	h      replicas.Handler
	cancel context.CancelFunc
	done   chan struct{}
}

// New connects to the brokers and creates the control topics.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 20 * time.Second
	}
	c := &Controller{cfg: cfg, apps: map[string]*appRun{}, slots: map[string]map[int]bool{}}
	l, err := streams.OpenLog(ctx, streams.LogConfig{
		Brokers: cfg.Brokers, Topic: cfg.Namer.Apps(), Also: []streams.TopicSpec{streams.CompactedTopic(cfg.Namer.Status())},
		Apply: c.applyRecord, Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	c.log, c.adm = l, kadm.NewClient(l.Client())
	return c, nil
}

// OnChange registers fn to receive every application after each change.
func (c *Controller) OnChange(fn func([]*spec.App)) {
	c.mu.Lock()
	c.onChange = append(c.onChange, fn)
	c.mu.Unlock()
}

// Run applies the apps topic until ctx ends, then stops every replica.
func (c *Controller) Run(ctx context.Context) error {
	c.log.Run(ctx)
	c.mu.Lock()
	var stopping [][]*replicaRun
	for _, a := range c.apps {
		for _, d := range a.deps {
			d.retired = true // a resize in flight stops what it starts
			stopping = append(stopping, d.replicas)
			d.replicas = nil
		}
	}
	c.apps = map[string]*appRun{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, rs := range stopping {
		wg.Go(func() { stopAll(rs) })
	}
	wg.Wait()
	c.draining.Wait()
	return nil
}

func (c *Controller) applyRecord(ctx context.Context, r *kgo.Record) {
	name := string(r.Key)
	var s *spec.App
	if r.Value != nil {
		s = new(spec.App)
		if err := json.Unmarshal(r.Value, s); err != nil {
			c.cfg.Log.Error("app spec undecodable; skipped", "app", name, "offset", r.Offset, "err", err)
			s = nil
		}
	}
	if s != nil || r.Value == nil {
		c.apply(ctx, name, s)
	}
}

// apply reconciles one application; s nil deletes it.
func (c *Controller) apply(ctx context.Context, name string, s *spec.App) {
	c.mu.Lock()
	old := c.apps[name]
	c.mu.Unlock()
	var next *appRun
	switch {
	case c.cfg.WatchOnly && s != nil:
		next = &appRun{spec: s, topo: Compile(c.cfg.Namer, s), deps: map[string]*depRun{}}
	case s != nil:
		next = c.start(ctx, s, old)
	}
	if old != nil && !c.cfg.WatchOnly {
		c.retire(ctx, old, next)
	}
	c.mu.Lock()
	if next == nil {
		delete(c.apps, name)
	} else {
		c.apps[name] = next
		for _, dr := range next.deps {
			c.resizeLocked(name, dr) // kept deployments whose replicas.initial changed
		}
	}
	specs := c.specsLocked()
	fns := slices.Clone(c.onChange)
	c.mu.Unlock()
	for _, fn := range fns {
		fn(specs)
	}
}

// start brings up s, keeping old's replicas of deployments that did not
// change and starting new ones for the rest (before old ones stop, so an
// upgrade drops nothing).
func (c *Controller) start(ctx context.Context, s *spec.App, old *appRun) *appRun {
	topo := Compile(c.cfg.Namer, s)
	if err := streams.CreateTopics(ctx, c.adm, topo.Topics()...); err != nil {
		c.cfg.Log.Error("app topics not created", "app", s.Name, "err", err)
	}
	run := &appRun{spec: s, topo: topo, deps: map[string]*depRun{}}
	for _, d := range s.Deployments {
		dt := topo.Deployments[d.Name]
		if err := seedOffsets(ctx, c.adm, dt.Group, dt.Inputs); err != nil {
			c.cfg.Log.Warn("group offsets not seeded", "group", dt.Group, "err", err)
		}
		if c.cfg.TopicsOnly {
			run.deps[d.Name] = &depRun{spec: d}
			continue
		}
		if old != nil && sameTopics(old.topo, topo, d.Name) {
			if prev := old.deps[d.Name]; prev != nil && prev.err == nil && c.keep(ctx, prev, d) {
				run.deps[d.Name] = prev
				continue
			}
		}
		dr := &depRun{spec: d, want: max(d.Replicas.Initial, 0)}
		if c.cfg.Held != nil && c.cfg.Held(d) {
			dr.want = 0
		}
		for range dr.want {
			rr, err := c.startReplica(ctx, s, topo, d)
			if err != nil {
				dr.err, dr.failures, dr.retryAt = err, 1, time.Now().Add(startBackoff)
				c.cfg.Log.Error("replica not started", "app", s.Name, "deployment", d.Name, "err", err)
				break
			}
			dr.replicas = append(dr.replicas, rr)
		}
		run.deps[d.Name] = dr
	}
	return run
}

// retire stops what old runs that next does not keep, and deletes the
// topics next no longer uses (all of them when next is nil).
func (c *Controller) retire(ctx context.Context, old, next *appRun) {
	var stopping []*replicaRun
	c.mu.Lock()
	for name, d := range old.deps {
		if next != nil && next.deps[name] == d {
			continue
		}
		d.retired = true
		stopping = append(stopping, d.replicas...)
		d.replicas = nil
	}
	c.mu.Unlock()
	stopAll(stopping)
	var gone []string
	keep := map[string]bool{}
	if next != nil {
		for _, t := range next.topo.Topics() {
			keep[t.Name] = true
		}
	}
	for _, t := range old.topo.Topics() {
		if !keep[t.Name] {
			gone = append(gone, t.Name)
		}
	}
	if len(gone) > 0 {
		if err := streams.DeleteTopics(ctx, c.adm, gone...); err != nil {
			c.cfg.Log.Warn("app topics not deleted", "app", old.spec.Name, "err", err)
		}
	}
	if next == nil {
		var groups []string
		for _, d := range old.topo.Deployments {
			groups = append(groups, d.Group)
		}
		if _, err := c.adm.DeleteGroups(ctx, groups...); err != nil {
			c.cfg.Log.Warn("app groups not deleted", "app", old.spec.Name, "err", err)
		}
	}
}

// BuildHandler builds the handler of one replica of deployment d: user
// code from the serve registry, or the model server for kind model.
func BuildHandler(ctx context.Context, reg *serve.Registry, mb ModelBuilder, app *spec.App, d spec.Deployment, caller *streams.Caller, namer streams.Namer) (replicas.Handler, error) {
	switch d.Kind {
	case spec.KindCEL:
		return newCELHandler(app.Name, d)
	case "":
		return reg.Build(ctx, app, d.Name, caller, namer)
	}
	if mb == nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name, ErrNoModelServing)
	}
	return mb.Build(ctx, app, d)
}

// closeHandler releases what a stopped replica's handler holds (a model
// server's loaded models), when it has anything to release.
func closeHandler(h replicas.Handler) {
	if c, ok := h.(io.Closer); ok {
		_ = c.Close()
	}
}

func (c *Controller) startReplica(ctx context.Context, app *spec.App, topo *Topology, d spec.Deployment) (*replicaRun, error) {
	h, err := BuildHandler(ctx, c.cfg.Registry, c.cfg.Models, app, d, c.cfg.Caller, c.cfg.Namer)
	if err != nil {
		return nil, err
	}
	rc, err := ReplicaConfig(c.cfg.Brokers, app.Name, topo, d, c.cfg.DrainTimeout, c.cfg.Log)
	if err != nil {
		closeHandler(h)
		return nil, err
	}
	group := rc.Group
	slot := c.takeSlot(group)
	rc.InstanceID = InstanceID(app.Name, d.Name, strconv.Itoa(slot))
	rep, err := replicas.New(ctx, rc, h)
	if err != nil {
		c.freeSlot(group, slot)
		closeHandler(h)
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	rr := &replicaRun{rep: rep, h: h, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rr.done)
		defer c.freeSlot(group, slot)
		if err := rep.Run(rctx); err != nil {
			c.cfg.Log.Error("replica stopped", "app", app.Name, "deployment", d.Name, "err", err)
		}
	}()
	return rr, nil
}

// takeSlot returns the lowest replica slot of group not in use, and takes it.
func (c *Controller) takeSlot(group string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	used := c.slots[group]
	if used == nil {
		used = map[int]bool{}
		c.slots[group] = used
	}
	slot := 0
	for used[slot] {
		slot++
	}
	used[slot] = true
	return slot
}

func (c *Controller) freeSlot(group string, slot int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.slots[group], slot)
	if len(c.slots[group]) == 0 {
		delete(c.slots, group)
	}
}

// InstanceID is the group instance ID of a replica slot of a deployment
// (replicas.Config.InstanceID): app.deployment.slot, where slot names the
// replica among the deployment's and may carry more (a version) after a
// dot. It is the same for every restart of the slot, so a restarted
// replica takes its partitions back at once.
func InstanceID(app, deployment, slot string) string {
	return app + "." + deployment + "." + slot
}

// ReplicaConfig is the replica configuration of deployment d of a compiled
// application; `sluice dev` and `sluice replica` both use it. It fails
// only when the rules of d's edges do not compile.
func ReplicaConfig(brokers []string, app string, topo *Topology, d spec.Deployment, drain time.Duration, log *slog.Logger) (replicas.Config, error) {
	dt := topo.Deployments[d.Name]
	router, err := newRouter(app, d.Name, dt)
	if err != nil {
		return replicas.Config{}, err
	}
	return replicas.Config{
		Router:       router,
		Brokers:      brokers,
		Group:        dt.Group,
		Topics:       dt.Inputs,
		Successors:   dt.Successors,
		Output:       topo.Output,
		DeadLetter:   topo.DeadLetter,
		Deployment:   d.Name,
		MaxOngoing:   d.MaxOngoingRequests,
		Ordered:      d.Ordered,
		DrainTimeout: drain,
		Log:          log.With("deployment", d.Name),
	}, nil
}

// stopAll stops replicas softly and in parallel, waiting for all.
func stopAll(rs []*replicaRun) {
	for _, r := range rs {
		r.cancel()
	}
	for _, r := range rs {
		<-r.done
		closeHandler(r.h)
	}
}

// keep reports whether prev's replicas can serve d as they are: d is the
// same deployment, or differs only in user_config and every replica took
// the new config through its Reconfigure hook (no restart, nothing dropped).
func (c *Controller) keep(ctx context.Context, prev *depRun, d spec.Deployment) bool {
	was := prev.spec
	was.Replicas, was.Autoscaling = d.Replicas, d.Autoscaling // sizing is the autoscaler's
	if equalDeployment(was, d) {
		c.mu.Lock()
		if prev.spec.Replicas.Initial != d.Replicas.Initial && (c.cfg.Held == nil || !c.cfg.Held(d)) {
			prev.want = d.Replicas.Initial // a new initial size is asked for now
		}
		prev.spec = d
		c.mu.Unlock()
		return true
	}
	was.UserConfig = d.UserConfig
	if !equalDeployment(was, d) || len(prev.replicas) == 0 {
		return false
	}
	c.mu.Lock()
	running := slices.Clone(prev.replicas)
	c.mu.Unlock()
	for _, r := range running {
		ok, err := serve.Reconfigure(ctx, r.h, d.UserConfig)
		if !ok || err != nil {
			if err != nil {
				c.cfg.Log.Warn("reconfigure failed; restarting replicas", "deployment", d.Name, "err", err)
			}
			return false
		}
	}
	c.mu.Lock()
	prev.spec = d
	c.mu.Unlock()
	c.cfg.Log.Info("deployment reconfigured in place", "deployment", d.Name)
	return true
}

func sameTopics(a, b *Topology, dep string) bool {
	x, y := a.Deployments[dep], b.Deployments[dep]
	return x.Group == y.Group && slices.Equal(x.Inputs, y.Inputs) && slices.Equal(x.Successors, y.Successors) &&
		slices.Equal(x.Routes, y.Routes) && x.Routing == y.Routing && x.SplitKey == y.SplitKey &&
		a.Output == b.Output && a.DeadLetter == b.DeadLetter
}

func equalDeployment(a, b spec.Deployment) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func (c *Controller) specsLocked() []*spec.App {
	out := make([]*spec.App, 0, len(c.apps))
	for _, a := range c.apps {
		out = append(out, a.spec)
	}
	slices.SortFunc(out, func(a, b *spec.App) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Apps returns the applied applications, sorted by name.
func (c *Controller) Apps() []*spec.App {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.specsLocked()
}

// ErrInvalid is wrapped by deploy errors caused by the spec itself.
var ErrInvalid = errors.New("invalid application")

// Deploy validates apps against the spec rules and this binary's handlers,
// writes them to the apps topic and waits, bounded by ctx, until they are
// applied. Route prefixes must be unique across applications.
func (c *Controller) Deploy(ctx context.Context, apps ...*spec.App) error {
	for _, a := range apps {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, a.Name, err)
		}
		if err := c.cfg.Registry.Check(a); err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, a.Name, err)
		}
		for _, other := range c.Apps() {
			if other.Name != a.Name && other.RoutePrefix == a.RoutePrefix {
				return fmt.Errorf("%w %s: route_prefix %s is taken by application %s", ErrInvalid, a.Name, a.RoutePrefix, other.Name)
			}
		}
	}
	recs := make([]*kgo.Record, 0, len(apps))
	for _, a := range apps {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode %s: %w", a.Name, err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(a.Name), Value: b})
	}
	if err := c.log.Write(ctx, recs...); err != nil {
		return err
	}
	if !c.cfg.WatchOnly {
		return nil
	}
	// A gateway creates no topics: wait for whoever runs the replicas to,
	// so that a request sent once deploy returns finds them.
	for _, a := range apps {
		var names []string
		for _, t := range Compile(c.cfg.Namer, a).Topics() {
			names = append(names, t.Name)
		}
		if err := streams.WaitTopics(ctx, c.adm, names...); err != nil {
			return fmt.Errorf("application %s is stored, but its topics were not created (is a `sluice node`, `sluice autoscaler` or `sluice dev` running against these brokers?): %w", a.Name, err)
		}
	}
	return nil
}

// ErrNotFound is returned for an application that does not exist.
var ErrNotFound = errors.New("no such application")

// Delete removes an application: its replicas stop, its topics and
// groups are deleted.
func (c *Controller) Delete(ctx context.Context, name string) error {
	c.mu.Lock()
	_, ok := c.apps[name]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return c.log.Write(ctx, &kgo.Record{Key: []byte(name)})
}

// AppStatus is what `sluice status` shows of one application.
type AppStatus struct {
	Name        string             `json:"name"`
	RoutePrefix string             `json:"route_prefix"`
	Ingress     string             `json:"ingress"`
	Topics      []string           `json:"topics"`
	Deployments []DeploymentStatus `json:"deployments"`
}

// DeploymentStatus is one deployment's state.
type DeploymentStatus struct {
	Name       string `json:"name"`
	Handler    string `json:"handler"`
	Group      string `json:"group"`
	Replicas   int    `json:"replicas"`
	Target     int    `json:"target"`
	Partitions int    `json:"partitions_assigned"`
	Processed  int64  `json:"processed"`
	Failed     int64  `json:"failed"`
	Ongoing    int64  `json:"ongoing"`
	Lag        int64  `json:"lag"`
	Error      string `json:"error,omitempty"`
	// Models is what each replica of a model deployment holds.
	Models []models.Report `json:"models,omitempty"`
	// Autoscaler is the autoscaler's view and its latest decisions.
	Autoscaler *autoscaler.Status `json:"autoscaler,omitempty"`
	// Placements is where each replica runs: node and GPU shares.
	Placements []placement.Replica `json:"placements,omitempty"`
}

// Status reports every application, with consumer-group lag read from the
// brokers (bounded by ctx; -1 where it could not be read).
func (c *Controller) Status(ctx context.Context) []AppStatus {
	c.mu.Lock()
	var out []AppStatus
	var groups []string
	for _, a := range c.apps {
		st := AppStatus{Name: a.spec.Name, RoutePrefix: a.spec.RoutePrefix, Ingress: a.spec.Ingress}
		for _, t := range a.topo.Topics() {
			st.Topics = append(st.Topics, t.Name)
		}
		for _, d := range a.spec.Deployments {
			dr := a.deps[d.Name]
			ds := DeploymentStatus{Name: d.Name, Handler: d.Handler, Group: a.topo.Deployments[d.Name].Group, Target: d.Replicas.Initial, Lag: -1}
			if dr != nil {
				ds.Replicas, ds.Target = len(dr.replicas), dr.want
				if dr.err != nil {
					ds.Error = dr.err.Error()
				}
				for _, r := range dr.replicas {
					s := r.rep.Stats()
					ds.Processed += s.Processed
					ds.Failed += s.Failed
					ds.Ongoing += s.Ongoing
					ds.Partitions += s.Partitions
				}
			}
			if c.cfg.Scaling != nil {
				if st, ok := c.cfg.Scaling(autoscaler.Target{App: a.spec.Name, Deployment: d.Name}); ok {
					ds.Autoscaler = &st
				}
			}
			if c.cfg.Placements != nil {
				ds.Placements = c.cfg.Placements(autoscaler.Target{App: a.spec.Name, Deployment: d.Name})
			}
			if d.Kind == spec.KindModel && c.cfg.Reports != nil {
				ds.Models = c.cfg.Reports.Deployment(a.spec.Name, d.Name)
			}
			groups = append(groups, ds.Group)
			st.Deployments = append(st.Deployments, ds)
		}
		out = append(out, st)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b AppStatus) int { return strings.Compare(a.Name, b.Name) })
	if len(groups) == 0 {
		return out
	}
	lags, err := c.adm.Lag(ctx, groups...)
	if err != nil {
		return out
	}
	for i := range out {
		for j := range out[i].Deployments {
			d := &out[i].Deployments[j]
			if l, ok := lags[d.Group]; ok && l.Error() == nil {
				d.Lag = l.Lag.Total()
			}
		}
	}
	return out
}

// LoadApp reads the apps topic to its end and returns the named
// application, for a replica process that runs one deployment of it.
func LoadApp(ctx context.Context, brokers []string, namer streams.Namer, name string, log *slog.Logger) (*spec.App, error) {
	topic := namer.Apps()
	cl, err := streams.Dial(ctx, brokers, log,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("apps topic: %w", err)
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || end.Err != nil {
		return nil, fmt.Errorf("apps topic %s: no end offset (is the platform's controller running?)", topic)
	}
	var found []byte
	for pos := int64(0); pos < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading apps topic: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			pos = r.Offset + 1
			if string(r.Key) == name {
				found = r.Value // a later tombstone resets it to nil
			}
		})
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	app := new(spec.App)
	if err := json.Unmarshal(found, app); err != nil {
		return nil, fmt.Errorf("application %s: stored spec undecodable: %w", name, err)
	}
	return app, nil
}

// Ready reports whether the application exists and every one of its
// deployments has a replica running in this process. A controller that
// only watches (a gateway instance) runs none: it reports existence.
func (c *Controller) Ready(app string) (exists, ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.apps[app]
	if a == nil {
		return false, false
	}
	if c.cfg.WatchOnly || c.cfg.TopicsOnly {
		return true, true
	}
	for _, d := range a.deps {
		if len(d.replicas) == 0 && (d.want > 0 || d.spec.Replicas.Min > 0 || d.err != nil) {
			return true, false
		}
	}
	return true, true
}
