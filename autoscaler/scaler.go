package autoscaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// Deployment is one deployment as the autoscaler sees it.
type Deployment struct {
	Target
	Group   string        // its consumer group
	Inputs  []string      // the topics the group reads
	Options Options       // from its spec
	Poll    time.Duration // how often its lag is read
}

// Config configures a Scaler.
type Config struct {
	Brokers  []string
	Status   string // the status topic decisions are published on
	Actuator Actuator
	// Ongoing, when set, reports the requests in flight over a
	// deployment's replicas (the dev actuator knows them).
	Ongoing func(Target) int64
	Log     *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

// publishEvery bounds how long a status goes unpublished when nothing
// changes, so that readers see it is alive.
const publishEvery = 5 * time.Second

// historyLen is how many size changes a status keeps.
const historyLen = 10

// A Scaler runs one loop per deployment: it reads the lag at the
// deployment's poll interval (or at once when records reach a deployment
// at zero), asks the policy, and hands size changes to the actuator.
type Scaler struct {
	cfg   Config
	cl    *kgo.Client
	adm   *kadm.Client
	lag   *LagReader
	watch *watcher

	mu     sync.Mutex
	runCtx context.Context // nil until Run
	loops  map[Target]*loop
}

type loop struct {
	d      Deployment
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	status Status
	sent   time.Time // when the status was last published
	// decided counts decisions: up, down, hold (metrics.go).
	decided [len(directions)]int64
}

// New connects to the brokers.
func New(ctx context.Context, cfg Config) (*Scaler, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cl, err := streams.Dial(ctx, cfg.Brokers, cfg.Log)
	if err != nil {
		return nil, err
	}
	s := &Scaler{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), lag: NewLagReader(cl), loops: map[Target]*loop{}}
	s.watch = newWatcher(cfg.Brokers, cfg.Log, s.Wake)
	return s, nil
}

// Set replaces the deployments to scale: loops start for new ones, stop
// for those gone (their status is withdrawn), and take new options.
func (s *Scaler) Set(deps []Deployment) {
	var gone []*loop
	defer func() { // outside s.mu: the watcher's wake takes it
		for _, l := range gone {
			s.stop(l)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[Target]bool{}
	for _, d := range deps {
		seen[d.Target] = true
		if l := s.loops[d.Target]; l != nil {
			l.d = d
			continue
		}
		l := &loop{d: d, wake: make(chan struct{}, 1)}
		s.loops[d.Target] = l
		if s.runCtx != nil {
			s.startLocked(l)
		}
	}
	for t, l := range s.loops {
		if !seen[t] {
			delete(s.loops, t)
			gone = append(gone, l)
		}
	}
}

func (s *Scaler) startLocked(l *loop) {
	ctx, cancel := context.WithCancel(s.runCtx)
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		s.run(ctx, l)
	}()
}

// stop ends l's loop and withdraws its status.
func (s *Scaler) stop(l *loop) {
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	t := l.d.Target
	s.watch.set(t, nil)
	s.cl.Produce(context.Background(), &kgo.Record{Topic: s.cfg.Status, Key: []byte(StatusKey(t))}, nil)
}

// Wake makes t's loop look at its lag now rather than at its next poll.
func (s *Scaler) Wake(t Target) {
	s.mu.Lock()
	l := s.loops[t]
	s.mu.Unlock()
	if l != nil {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Status returns the latest status of t.
func (s *Scaler) Status(t Target) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.loops[t]
	if l == nil || l.status.At.IsZero() {
		return Status{}, false
	}
	return l.status, true
}

// Run scales until ctx ends.
func (s *Scaler) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	for _, l := range s.loops {
		s.startLocked(l)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	var done []chan struct{}
	for _, l := range s.loops {
		if l.done != nil {
			done = append(done, l.done)
		}
	}
	s.mu.Unlock()
	for _, d := range done {
		<-d
	}
	s.watch.close()
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = s.cl.Flush(fctx)
	cancel()
	s.cl.Close()
	return nil
}

func (s *Scaler) deployment(l *loop) Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return l.d
}

func (s *Scaler) run(ctx context.Context, l *loop) {
	var st State
	first := true
	for {
		d := s.deployment(l)
		s.step(ctx, l, &st, first)
		first = false
		every := d.Poll
		if d.Options.Min == d.Options.Max {
			every = max(every, publishEvery) // a fixed size: only kept and reported
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-l.wake:
			t.Stop()
		}
	}
}

// step observes one deployment, decides and acts.
func (s *Scaler) step(ctx context.Context, l *loop, st *State, first bool) {
	d := s.deployment(l)
	size, err := s.cfg.Actuator.Size(ctx, d.Target)
	if err != nil {
		s.report(l, func(x *Status) { x.Problem = err.Error() }, nil)
		return
	}
	if first && size.Current == 0 && d.Options.Initial > 0 {
		// Nothing runs yet (a fresh node or cluster): start replicas.initial.
		if err := s.cfg.Actuator.Scale(ctx, d.Target, d.Options.Initial); err == nil {
			size.Current = d.Options.Initial
		}
	}
	rctx, cancel := context.WithTimeout(ctx, min(max(2*d.Poll, time.Second), 5*time.Second))
	gl, lagErr := s.lag.Read(rctx, d.Group, d.Inputs)
	cancel()
	if ctx.Err() != nil {
		return
	}
	ob := Observation{Time: s.cfg.Now(), Lag: gl.Total, Current: size.Current, Ready: gl.Members, Partitions: len(gl.Partitions), Err: lagErr}
	if s.cfg.Ongoing != nil {
		ob.Ongoing = s.cfg.Ongoing(d.Target)
	}
	dec, next := Decide(d.Options, *st, ob)
	*st = next
	if dec.Partitions > 0 {
		if err := s.grow(ctx, d, gl, dec.Partitions); err != nil {
			dec.To = min(dec.To, max(ob.Partitions, dec.From))
			dec.Reason += fmt.Sprintf("; partitions not added (%v)", err)
		} else {
			dec.Reason += fmt.Sprintf("; input topics grown to %d partitions", dec.Partitions)
		}
	}
	problem := size.Problem
	if dec.To != dec.From {
		s.cfg.Log.Info("scaling", "app", d.App, "deployment", d.Deployment, "from", dec.From, "to", dec.To, "reason", dec.Reason)
		if err := s.cfg.Actuator.Scale(ctx, d.Target, dec.To); err != nil {
			problem = fmt.Sprintf("scale to %d failed: %v", dec.To, err)
			s.cfg.Log.Warn("scale failed", "app", d.App, "deployment", d.Deployment, "to", dec.To, "err", err)
		}
	}
	if lagErr == nil {
		s.watchAtZero(d, dec.To, gl)
	}
	s.report(l, func(x *Status) {
		x.Min, x.Max = d.Options.Min, d.Options.Max
		x.Current, x.Ready, x.Lag, x.Problem = dec.To, gl.Members, gl.Total, problem
		x.LagError = ""
		if lagErr != nil {
			x.LagError = lagErr.Error()
		}
		x.Last = dec
	}, &dec)
}

// watchAtZero watches the input topics of a deployment at zero, from what
// its group has not done, so that the first record wakes it.
func (s *Scaler) watchAtZero(d Deployment, size int, gl GroupLag) {
	if size > 0 {
		s.watch.set(d.Target, nil)
		return
	}
	from := map[string]map[int32]int64{}
	for _, p := range gl.Partitions {
		if from[p.Topic] == nil {
			from[p.Topic] = map[int32]int64{}
		}
		from[p.Topic][p.Partition] = p.End - p.Lag
	}
	s.watch.set(d.Target, from)
}

// grow adds partitions to the deployment's input topics, up to n each.
func (s *Scaler) grow(ctx context.Context, d Deployment, gl GroupLag, n int) error {
	have := map[string]int{}
	for _, p := range gl.Partitions {
		have[p.Topic]++
	}
	for _, t := range d.Inputs {
		if have[t] >= n {
			continue
		}
		rs, err := s.adm.UpdatePartitions(ctx, n, t)
		if err == nil {
			err = rs.Error()
		}
		if errors.Is(err, kerr.InvalidPartitions) {
			continue // grown already; this read's metadata was older
		}
		if err != nil {
			return fmt.Errorf("topic %s: %w", t, err)
		}
		s.cfg.Log.Info("partitions added", "topic", t, "from", have[t], "to", n)
	}
	return nil
}

// report updates l's status and publishes it when the size, a problem or
// the lag error changed, or it has not been published for a while.
func (s *Scaler) report(l *loop, update func(*Status), dec *Decision) {
	s.mu.Lock()
	old := l.status
	st := &l.status
	st.Target = l.d.Target
	update(st)
	st.At = s.cfg.Now()
	l.count(dec)
	if dec != nil && dec.To != dec.From {
		c := *dec
		st.Changed = &c
		st.History = append(st.History, c)
		if n := len(st.History); n > historyLen {
			st.History = slices.Clone(st.History[n-historyLen:])
		}
	}
	due := st.Current != old.Current || st.Problem != old.Problem || st.LagError != old.LagError ||
		st.At.Sub(l.sent) >= publishEvery
	t := st.Target
	var b []byte
	if due {
		l.sent = st.At
		b, _ = json.Marshal(st)
	}
	s.mu.Unlock()
	if b != nil {
		s.cl.Produce(context.Background(), &kgo.Record{Topic: s.cfg.Status, Key: []byte(StatusKey(t)), Value: b}, func(_ *kgo.Record, err error) {
			if err != nil {
				s.cfg.Log.Warn("autoscaler status not published", "deployment", t.String(), "err", err)
			}
		})
	}
}
