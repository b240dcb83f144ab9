// Package sim replays load traces through autoscaling policies: Sluice's
// own (autoscaler.Decide) and models of the KEDA Kafka scaler and of Ray
// Serve's autoscaler at their documented defaults. It is deterministic:
// arrivals come from seeded generators and time moves in fixed steps, so
// the same trace and policy always give the same Result.
//
// The model is one deployment consuming one topic. Requests wait in one
// shared FIFO queue (the consumer group's backlog) and each replica serves
// up to Model.MaxOngoing of them at once, each for Model.Service. Which
// partition a request is on, and so which replica may take it, is not
// modelled: every ready replica takes from the head of the queue.
//
// A replica counts for replica-seconds from the moment it is asked for
// and takes work Model.Startup later (the same delay for every policy). A
// replica asked to stop takes no new work at once and finishes what it
// holds; it counts until then.
//
// Lag is what is queued or in flight: a request's offset counts as
// committed the moment it finishes (no commit interval), for every
// policy alike. A consumer group rebalance takes no time here: scale
// events are counted (Result.ScaleEvents), not paid for.
package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// SlowWait is the wait past which a request counts as slow.
const SlowWait = time.Second

// AbsorbWindow is how long after Trace.Surge Result.Absorb looks.
const AbsorbWindow = 5 * time.Minute

// Model is the deployment the traces are replayed against.
type Model struct {
	MaxOngoing        int           // requests one replica serves at once
	Service           time.Duration // how long each request takes
	Startup           time.Duration // from asking for a replica to its taking work
	Partitions        int           // of the input topic: no policy runs more consumers
	Min, Max, Initial int           // replicas
	Step              time.Duration // the simulation step: policies are ticked after each
}

// DefaultModel serves 4 requests at once per replica for 200 ms each (20
// req/s per replica), starts a replica in 2 s, has 16 partitions, scales
// between 0 and 16 replicas from 1 and steps by 50 ms.
func DefaultModel() Model {
	return Model{
		MaxOngoing: 4, Service: 200 * time.Millisecond, Startup: 2 * time.Second, Partitions: 16,
		Min: 0, Max: 16, Initial: 1, Step: 50 * time.Millisecond,
	}
}

func (m Model) validate() error {
	switch {
	case m.MaxOngoing < 1 || m.Service <= 0 || m.Startup < 0 || m.Step <= 0:
		return fmt.Errorf("sim: model needs max ongoing ≥ 1, service > 0, startup ≥ 0 and step > 0: %+v", m)
	case m.Min < 0 || m.Min > m.Initial || m.Initial > m.Max || m.Max > m.Partitions:
		return fmt.Errorf("sim: model needs 0 ≤ min ≤ initial ≤ max ≤ partitions: %+v", m)
	}
	return nil
}

// View is what a policy is shown of the deployment at the end of a step.
type View struct {
	Now      time.Duration
	Queued   int // arrived and not yet taken by a replica
	InFlight int // being served
	Arrived  int // arrivals during the step that just ended
	Current  int // replicas asked for (starting or ready), not stopping
	Ready    int // replicas taking work
}

// Lag is what a consumer group has not yet done: queued and in flight.
// Ray Serve counts the same as its ongoing requests (queued at the
// handles plus running on the replicas).
func (v View) Lag() int { return v.Queued + v.InFlight }

// A Policy sizes the deployment. Tick is called at the end of every step
// and returns the replicas wanted (v.Current for no change); a policy
// keeps its own clock for when it looks.
type Policy interface {
	Tick(v View) int
}

// A Contender is a named policy; New makes a fresh one for one run.
type Contender struct {
	Name string
	New  func(Model) (Policy, error)
}

// Contenders are the policies compared: Sluice, KEDA and Ray Serve, each
// at its defaults.
func Contenders() []Contender {
	return []Contender{
		{"Sluice", Sluice},
		{"KEDA", func(m Model) (Policy, error) { return NewKEDA(DefaultKEDA(), m), nil }},
		{"Ray Serve", func(m Model) (Policy, error) { return NewRay(DefaultRay(), m), nil }},
	}
}

// Fixed is a policy that always wants n replicas.
func Fixed(n int) Contender {
	return Contender{fmt.Sprintf("fixed %d", n), func(Model) (Policy, error) { return fixedSize(n), nil }}
}

type fixedSize int

func (f fixedSize) Tick(View) int { return int(f) }

// Result is what one trace did under one policy.
type Result struct {
	Trace, Policy  string
	Requests       int
	P50, P99       time.Duration // wait: from arrival to service start
	Slow           int           // requests that waited more than SlowWait
	ReplicaSeconds float64
	// Absorb is how long the first surge took to absorb: from
	// Trace.Surge until the last request arriving within AbsorbWindow of
	// it that waited more than SlowWait began service (0 if none did).
	Absorb      time.Duration
	ScaleEvents int // changes of the replicas asked for: each is a group rebalance
	MaxQueued   int // the longest queue seen at the end of a step
	Samples     []Sample
}

// SlowShare is the share of requests that waited more than SlowWait.
func (r Result) SlowShare() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Slow) / float64(r.Requests)
}

// Sample is the deployment at one second.
type Sample struct {
	At       time.Duration
	Rate     float64 // the trace's arrival rate
	Replicas int     // asked for
	Ready    int
	Lag      int
}

type replica struct {
	asked, ready time.Duration
	stopped      bool
	stoppedAt    time.Duration
	busy         []time.Duration // per slot: busy until
}

func (r *replica) inFlight(now time.Duration) int {
	n := 0
	for _, b := range r.busy {
		if b > now {
			n++
		}
	}
	return n
}

// drained is when a stopped replica finished its last request.
func (r *replica) drained() time.Duration {
	return max(r.stoppedAt, slices.Max(r.busy))
}

type run struct {
	m        Model
	reps     []*replica // asked for, or stopped and still draining
	costs    time.Duration
	events   int
	arrivals []time.Duration
	starts   []time.Duration // service start of each arrival; -1 while queued
	head     int             // first arrival not yet started
	next     int             // first arrival not yet queued
}

// Run replays tr through the policy c makes, on model m.
func Run(tr Trace, m Model, c Contender) (Result, error) {
	if err := m.validate(); err != nil {
		return Result{}, err
	}
	p, err := c.New(m)
	if err != nil {
		return Result{}, fmt.Errorf("sim: %s: %w", c.Name, err)
	}
	r := &run{m: m, arrivals: tr.arrivals()}
	r.starts = make([]time.Duration, len(r.arrivals))
	for i := range r.starts {
		r.starts[i] = -1
	}
	r.resize(m.Initial, -m.Startup) // the initial replicas are ready at 0
	res := Result{Trace: tr.Name, Policy: c.Name, Requests: len(r.arrivals)}
	for now := m.Step; now <= tr.Duration; now += m.Step {
		arrived := r.next
		for r.next < len(r.arrivals) && r.arrivals[r.next] < now {
			r.next++
		}
		r.dispatch(now)
		v := r.view(now)
		v.Arrived = r.next - arrived
		res.MaxQueued = max(res.MaxQueued, v.Queued)
		want := min(max(p.Tick(v), m.Min), m.Max)
		if want != v.Current {
			r.resize(want, now)
			r.events++
		}
		if now%time.Second == 0 {
			v = r.view(now)
			res.Samples = append(res.Samples, Sample{At: now, Rate: tr.Rate(now), Replicas: v.Current, Ready: v.Ready, Lag: v.Lag()})
		}
		r.retire(now)
	}
	r.summarize(tr, &res)
	return res, nil
}

// dispatch starts queued requests, in arrival order, on the slot free
// earliest, for every start before now.
func (r *run) dispatch(now time.Duration) {
	for r.head < r.next {
		var best *replica
		slot, free := -1, time.Duration(math.MaxInt64)
		for _, rep := range r.reps {
			if rep.stopped {
				continue
			}
			for i, b := range rep.busy {
				if f := max(b, rep.ready); f < free {
					best, slot, free = rep, i, f
				}
			}
		}
		if best == nil {
			return
		}
		start := max(free, r.arrivals[r.head])
		if start >= now {
			return
		}
		best.busy[slot] = start + r.m.Service
		r.starts[r.head] = start
		r.head++
	}
}

func (r *run) view(now time.Duration) View {
	v := View{Now: now, Queued: r.next - r.head}
	for _, rep := range r.reps {
		v.InFlight += rep.inFlight(now)
		if rep.stopped {
			continue
		}
		v.Current++
		if rep.ready <= now {
			v.Ready++
		}
	}
	return v
}

// resize asks for n replicas at now: new ones start, or the surplus
// stops: those still starting first (the newest first), then those
// holding the least work.
func (r *run) resize(n int, now time.Duration) {
	var live []*replica
	for _, rep := range r.reps {
		if !rep.stopped {
			live = append(live, rep)
		}
	}
	for i := len(live); i < n; i++ {
		r.reps = append(r.reps, &replica{asked: max(now, 0), ready: now + r.m.Startup, busy: make([]time.Duration, r.m.MaxOngoing)})
	}
	if n >= len(live) {
		return
	}
	slices.SortStableFunc(live, func(a, b *replica) int {
		if c := cmp.Compare(b.ready, a.ready); a.ready > now || b.ready > now {
			return c // later-ready (starting) first
		}
		return cmp.Compare(a.inFlight(now), b.inFlight(now))
	})
	for _, rep := range live[:len(live)-n] {
		rep.stopped, rep.stoppedAt = true, now
	}
}

// retire drops replicas stopped and drained by now, keeping their cost.
func (r *run) retire(now time.Duration) {
	r.reps = slices.DeleteFunc(r.reps, func(rep *replica) bool {
		if rep.stopped && rep.drained() <= now {
			r.costs += rep.drained() - rep.asked
			return true
		}
		return false
	})
}

func (r *run) summarize(tr Trace, res *Result) {
	end := tr.Duration
	cost := r.costs
	for _, rep := range r.reps {
		until := end
		if rep.stopped {
			until = min(rep.drained(), end)
		}
		cost += until - rep.asked
	}
	res.ReplicaSeconds = cost.Seconds()
	res.ScaleEvents = r.events

	waits := make([]time.Duration, len(r.arrivals))
	for i, a := range r.arrivals {
		s := r.starts[i]
		if s < 0 {
			s = end // still queued at the end: it waited at least this long
		}
		waits[i] = s - a
		if waits[i] > SlowWait {
			res.Slow++
			if a >= tr.Surge && a < tr.Surge+AbsorbWindow {
				res.Absorb = max(res.Absorb, s-tr.Surge)
			}
		}
	}
	slices.Sort(waits)
	res.P50, res.P99 = quantile(waits, 0.50), quantile(waits, 0.99)
}

// quantile is the nearest-rank q-quantile of sorted d.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}
