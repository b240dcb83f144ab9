package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Join types (the spec's join.type).
const (
	JoinInner = "inner" // every input, within the window; else an error naming the missing ones
	JoinOuter = "outer" // what arrived when the window ends (or the trigger fires); the others null
	JoinAny   = "any"   // the first input; later ones dropped
)

// JoinConfig makes a replica's deployment a join: the inputs one request
// causes on its incoming dataflow edges become one input, a JSON object
// keyed by upstream deployment name.
//
// Inputs are matched by request: the sl-id, else the record key. The
// edges into a join keep the request's key and share the application's
// partition count, so a request's inputs land on the same partition
// number of each input topic; the replica joins its group with the
// coPartitioned balancer, which gives one member the same partition
// number of every topic. A pending input is held in memory, its offset
// not committed: a replica killed or a partition moved replays it to the
// next owner, which rebuilds the state. See docs/ARCHITECTURE.md, "Joins".
type JoinConfig struct {
	Type   string
	Window time.Duration
	// Trigger names the inputs that fire the join: all of them (inner,
	// outer) or any one (any). Empty: every input.
	Trigger []string
	// Sources maps each incoming dataflow edge topic to its upstream
	// deployment. A record from another topic (a handle call) is not
	// joined.
	Sources map[string]string
	// Merge, when set, may build the joined value itself from the inputs
	// that came (in upstream-name order): ok false leaves the JSON object.
	// An error fails the request (invalid_argument unless it carries a
	// code). The controller merges Open Inference Protocol tensors by name.
	Merge func(inputs []JoinInput) (value []byte, contentType string, ok bool, err error)
}

// JoinInput is one input of a join, for JoinConfig.Merge.
type JoinInput struct {
	From        string // the upstream deployment
	Value       []byte
	ContentType string
}

// JoinStats are a join's counters.
type JoinStats struct {
	Fired    int64 // joins emitted (complete, or filled at the window's end)
	TimedOut int64 // joins whose window ended before they fired (inner: failed; outer, any: emitted with what came)
	Late     int64 // inputs dropped: after their join fired, or a second from the same upstream
	Replayed int64 // inputs read again after a move that the last commit recorded as done: not joined again
}

// joiner holds a replica's pending joins.
type joiner struct {
	r       *Replica
	cfg     JoinConfig
	names   []string        // every upstream, sorted
	trigger map[string]bool // the inputs that fire the join
	keep    time.Duration   // how long a fired join's key is remembered

	mu    sync.Mutex
	open  map[string][]*joinGroup // by request; by key, in arrival order
	fired map[string]time.Time    // recently fired, by request
	meta  map[tp]committedMeta    // the metadata last committed per partition (under Replica.mu)
	order []firedKey              // fired keys in time order, for expiry

	stats struct{ fired, timedOut, late, replayed atomic.Int64 }
}

type firedKey struct {
	key string
	at  time.Time
}

// joinGroup is one request's inputs. Once it fires, every member's slot
// points at it: the offsets of its inputs are committed together (see
// Replica.markLocked).
type joinGroup struct {
	key    string
	byID   bool            // matched by sl-id (unique per request), not by record key
	inputs map[string]*run // by upstream
	runs   []*run          // in arrival order
	timer  *time.Timer
	done   bool // fired, failed or given up (under joiner.mu)

	left  int          // members not yet past their partition's completed prefix (under Replica.mu)
	parts []*partition // the members' partitions
}

func newJoiner(r *Replica, cfg JoinConfig) *joiner {
	j := &joiner{r: r, cfg: cfg, trigger: map[string]bool{}, open: map[string][]*joinGroup{}, fired: map[string]time.Time{}, meta: map[tp]committedMeta{}}
	for _, n := range cfg.Sources {
		if !slices.Contains(j.names, n) {
			j.names = append(j.names, n)
		}
	}
	slices.Sort(j.names)
	fire := cfg.Trigger
	if len(fire) == 0 {
		fire = j.names
	}
	for _, n := range fire {
		j.trigger[n] = true
	}
	j.keep = max(10*cfg.Window, time.Minute)
	return j
}

// JoinStats returns the replica's join counters (zero when it joins nothing).
func (r *Replica) JoinStats() JoinStats {
	if r.join == nil {
		return JoinStats{}
	}
	return JoinStats{Fired: r.join.stats.fired.Load(), TimedOut: r.join.stats.timedOut.Load(), Late: r.join.stats.late.Load(), Replayed: r.join.stats.replayed.Load()}
}

// arrive takes one input of x's record. It returns the joined input when
// this one fires the join (x then runs the handler and its outputs carry
// the join's), or nil when the record needs nothing more from process:
// it is held for its join, dropped as late, or failed.
func (j *joiner) arrive(x *run, in *Input) *Input {
	src, ok := j.cfg.Sources[in.Topic]
	if !ok {
		return in
	}
	// A request id names one request: a second input of it from one
	// upstream is a redelivery, and inputs after the join fired are
	// late. A key may name many records (a sensor's readings): inputs
	// of one key are joined in arrival order, the first A with the
	// first B, and nothing is remembered once a join fired.
	key, byID := in.Env.ID, in.Env.ID != ""
	if !byID {
		key = string(in.Key)
	}
	if key == "" {
		x.fail(streams.Errorf(streams.CodeInvalidArgument, "deployment %s joins its inputs by request: this record from %s has neither an sl-id nor a key", j.r.cfg.Deployment, src))
		return nil
	}
	x.in = in
	if j.wasDone(x, key, byID) {
		return nil
	}
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.expireLocked(now)
	if _, done := j.fired[key]; done && byID {
		j.stats.late.Add(1)
		return nil
	}
	var g *joinGroup
	for _, o := range j.open[key] {
		if o.inputs[src] == nil {
			g = o
			break
		}
	}
	switch {
	case g == nil && byID && len(j.open[key]) > 0: // an upstream's record delivered again
		j.stats.late.Add(1)
		return nil
	case g == nil:
		g = &joinGroup{key: key, byID: byID, inputs: map[string]*run{}}
		g.timer = time.AfterFunc(j.cfg.Window, func() { j.expire(g) })
		j.open[key] = append(j.open[key], g)
	}
	g.inputs[src] = x
	g.runs = append(g.runs, x)
	if !j.ready(g) {
		j.hold(x)
		return nil
	}
	g.timer.Stop()
	j.closeLocked(g, now)
	j.stats.fired.Add(1)
	x.joined = j.members(g, x)
	joined, err := j.combine(g, x)
	if err != nil {
		x.fail(err)
		return nil
	}
	return joined
}

// ready reports whether g's inputs fire the join.
func (j *joiner) ready(g *joinGroup) bool {
	n := 0
	for name := range j.trigger {
		if g.inputs[name] != nil {
			if j.cfg.Type == JoinAny {
				return true
			}
			n++
		}
	}
	return n == len(j.trigger)
}

// hold parks x until its join fires or is given up: its slot stays in
// the partition's queue (its offset is not committed), but it no longer
// counts against MaxOngoing, so that one input topic running ahead of
// another cannot stop the replica from polling the other.
func (j *joiner) hold(x *run) {
	x.pending.Add(1)
	j.r.outOfFlight()
}

// outOfFlight ends one count of a record in flight outside complete: the
// poll loop may take another, and whoever waits for the count to reach
// zero (a transaction's window ending, a revoke, the stop) looks again.
// Without the wake-up such a waiter slept until its bound.
func (r *Replica) outOfFlight() {
	drained := r.ongoing.Add(-1) == 0
	r.mu.Lock()
	r.idle.Broadcast()
	r.mu.Unlock()
	select {
	case r.freed <- struct{}{}:
	default:
	}
	if drained {
		select {
		case r.drained <- struct{}{}:
		default:
		}
	}
}

// unhold ends x's hold: the record completes once its own produces are
// acknowledged.
func (x *run) unhold() {
	x.r.ongoing.Add(1)
	x.release()
}

// closeLocked removes g from the pending joins and, for a request id,
// remembers it, so that its later inputs are dropped; j.mu is held.
func (j *joiner) closeLocked(g *joinGroup, now time.Time) {
	j.removeLocked(g)
	if g.byID {
		j.fired[g.key] = now
		j.order = append(j.order, firedKey{g.key, now})
	}
}

// removeLocked takes g out of the pending joins; j.mu is held.
func (j *joiner) removeLocked(g *joinGroup) {
	g.done = true
	gs := slices.DeleteFunc(j.open[g.key], func(o *joinGroup) bool { return o == g })
	if len(gs) == 0 {
		delete(j.open, g.key)
	} else {
		j.open[g.key] = gs
	}
}

// expireLocked forgets fired keys older than keep; j.mu is held.
func (j *joiner) expireLocked(now time.Time) {
	n := 0
	for n < len(j.order) && now.Sub(j.order[n].at) > j.keep {
		if j.fired[j.order[n].key].Equal(j.order[n].at) {
			delete(j.fired, j.order[n].key)
		}
		n++
	}
	if n > 0 {
		j.order = slices.Delete(j.order, 0, n)
	}
}

// members ties the slots of g's inputs into one commit group and returns
// the runs other than by, which complete when by does.
func (j *joiner) members(g *joinGroup, by *run) []*run {
	j.r.mu.Lock()
	g.left = len(g.runs)
	for _, x := range g.runs {
		x.s.group = g
		if !slices.Contains(g.parts, x.s.part) {
			g.parts = append(g.parts, x.s.part)
		}
	}
	j.r.mu.Unlock()
	others := make([]*run, 0, len(g.runs)-1)
	for _, x := range g.runs {
		if x != by {
			others = append(others, x)
		}
	}
	return others
}

// combine builds the joined input: by's envelope and key, and an object
// with one field per upstream (null for those that did not come; for any,
// only the first).
func (j *joiner) combine(g *joinGroup, by *run) (*Input, error) {
	in := *by.in
	in.Value, in.Env.ContentType = j.object(g), contentJSON
	if j.cfg.Merge == nil {
		return &in, nil
	}
	var came []JoinInput
	for _, name := range j.names {
		if x := g.inputs[name]; x != nil && (j.cfg.Type != JoinAny || x == g.runs[0]) {
			came = append(came, JoinInput{From: name, Value: x.in.Value, ContentType: x.in.Env.ContentType})
		}
	}
	v, ct, ok, err := j.cfg.Merge(came)
	if err != nil {
		if _, coded := err.(*streams.Error); !coded {
			err = streams.Errorf(streams.CodeInvalidArgument, "deployment %s: join: %v", j.r.cfg.Deployment, err)
		}
		return &in, err
	}
	if ok {
		in.Value, in.Env.ContentType = v, ct
	}
	return &in, nil
}

const contentJSON = "application/json"

func (j *joiner) object(g *joinGroup) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range j.names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		x := g.inputs[name]
		if x == nil || j.cfg.Type == JoinAny && x != g.runs[0] {
			b.WriteString("null")
			continue
		}
		b.Write(jsonValue(x.in.Value, x.in.Env.ContentType))
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// jsonValue is an input as a field of the joined object: JSON as it is,
// text or anything else as a JSON string.
func jsonValue(v []byte, contentType string) []byte {
	if !strings.HasPrefix(contentType, "text/plain") && len(v) > 0 && json.Valid(v) {
		return v
	}
	s, _ := json.Marshal(string(v))
	return s
}

// expire ends g's window: outer and any fire with what came; inner fails
// with an error naming the inputs that never came, answered to the
// caller, or dead-lettered (the record of the first input, its value the
// joined object of what came) when nobody waits.
func (j *joiner) expire(g *joinGroup) {
	if j.r.txn != nil {
		defer j.r.enterWindow()()
	}
	j.mu.Lock()
	if g.done {
		j.mu.Unlock()
		return
	}
	if j.revoked(g) {
		// An input came in just as its partition was revoked: the
		// partition's next owner has the request's inputs.
		j.removeLocked(g)
		j.mu.Unlock()
		for _, x := range g.runs {
			x.abandon()
			x.unhold()
		}
		return
	}
	j.closeLocked(g, time.Now())
	j.stats.timedOut.Add(1)
	var missing []string
	for _, n := range j.names {
		if j.trigger[n] && g.inputs[n] == nil {
			missing = append(missing, n)
		}
	}
	first := g.runs[0]
	first.joined = j.members(g, first)
	joined, err := j.combine(g, first)
	j.mu.Unlock()

	x := first
	defer x.unhold()
	if err != nil && j.cfg.Type != JoinInner {
		x.fail(err)
		return
	}
	if j.cfg.Type == JoinInner {
		rec := *x.rec
		rec.Value = joined.Value
		x.rec = &rec
		x.fail(streams.Errorf(streams.CodeDeadlineExceeded, "deployment %s: join window %v ended without input from %s (came: %s)",
			j.r.cfg.Deployment, j.cfg.Window, strings.Join(missing, ", "), strings.Join(cameFrom(g), ", ")))
		return
	}
	j.stats.fired.Add(1)
	j.r.runJoined(x, joined)
}

// enterWindow makes the work of a join's window timer (an exactly-once
// replica's) part of the open transaction: it waits while a window ends,
// counts as a record in flight, so that the window ends only after its
// outputs, and opens the window if no record did. The function it returns
// ends that count; call it after the input's unhold.
func (r *Replica) enterWindow() func() {
	r.gate.RLock()
	r.ongoing.Add(1)
	r.gate.RUnlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return r.outOfFlight
}

// reset forgets the requests remembered as fired and gives up the
// pending joins: after an aborted transaction, a new session reads from
// the commit, and what fired in the aborted one fires again.
func (j *joiner) reset() {
	j.drop(nil)
	j.mu.Lock()
	clear(j.fired)
	j.order = nil
	j.mu.Unlock()
}

// revoked reports whether one of g's inputs is from a partition this
// replica no longer owns.
func (j *joiner) revoked(g *joinGroup) bool {
	j.r.mu.Lock()
	defer j.r.mu.Unlock()
	for _, x := range g.runs {
		if x.s.part.revoked {
			return true
		}
	}
	return false
}

func cameFrom(g *joinGroup) []string {
	names := make([]string, 0, len(g.runs))
	for _, x := range g.runs {
		for n, y := range g.inputs {
			if y == x {
				names = append(names, n)
			}
		}
	}
	return names
}

// runJoined runs the handler on a join fired at the end of its window,
// on the goroutine of the window's timer, as process does for a join
// fired by an arriving input.
func (r *Replica) runJoined(x *run, in *Input) {
	ctx := context.Background()
	if !in.Env.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, in.Env.Deadline)
		defer cancel()
	}
	x.ctx, x.in = ctx, in
	if err := r.call(ctx, in, x); err != nil {
		x.fail(err)
		return
	}
	r.stats.processed.Add(1)
	if x.stream {
		x.send(protocol.End(&x.req, r.cfg.Output, x.seq))
	}
}

// drop gives up the pending joins that hold an input of the partitions
// (every one when ps is nil): their records are not committed, so the
// partitions' next owner reads them again and joins them there.
func (j *joiner) drop(ps map[string][]int32) {
	j.mu.Lock()
	var held []*run
	for _, gs := range j.open {
		for _, g := range slices.Clone(gs) {
			if ps != nil && !g.touches(ps) {
				continue
			}
			g.timer.Stop()
			j.removeLocked(g)
			held = append(held, g.runs...)
		}
	}
	j.mu.Unlock()
	for _, x := range held {
		x.abandon()
		x.unhold()
	}
}

func (g *joinGroup) touches(ps map[string][]int32) bool {
	for _, x := range g.runs {
		if slices.Contains(ps[x.rec.Topic], x.rec.Partition) {
			return true
		}
	}
	return false
}

// markLocked marks for commit what a partition's completed prefix allows
// once joins are involved: last is the prefix's last record, popped the
// slots just taken off its queue. A fired join's inputs are committed
// together: a partition's commit point stays at the first input of a join
// some of whose other inputs are not yet in their own partition's prefix,
// so a replay never holds only some inputs of a join that fired (which
// would wait for the others again and fail, or fill them with null). r.mu
// is held.
func (r *Replica) markLocked(part *partition, last *kgo.Record, popped []*slot) {
	touched := []*partition{part}
	part.tail = append(part.tail, popped...)
	for _, s := range popped {
		g := s.group
		if g == nil {
			continue
		}
		g.left--
		if g.left > 0 {
			part.held = append(part.held, s)
			continue
		}
		for _, p := range g.parts {
			if !slices.Contains(touched, p) {
				touched = append(touched, p)
			}
		}
	}
	if last != nil {
		part.last = last
	}
	marks := map[string]map[int32]kgo.EpochOffset{}
	for _, p := range touched {
		for len(p.held) > 0 && p.held[0].group.left == 0 {
			p.held = p.held[1:]
		}
		if p.revoked || p.last == nil {
			continue
		}
		at := kgo.EpochOffset{Epoch: p.last.LeaderEpoch, Offset: p.last.Offset + 1}
		if len(p.held) > 0 {
			at = kgo.EpochOffset{Epoch: p.held[0].rec.LeaderEpoch, Offset: p.held[0].rec.Offset}
		}
		n := 0
		for n < len(p.tail) && p.tail[n].rec.Offset < at.Offset {
			n++
		}
		p.tail = p.tail[n:]
		if marks[p.last.Topic] == nil {
			marks[p.last.Topic] = map[int32]kgo.EpochOffset{}
		}
		marks[p.last.Topic][p.last.Partition] = at
	}
	if len(marks) > 0 {
		r.cl.MarkCommitOffsets(marks)
	}
}

// stampID gives a record of the stamped ingress without an sl-id its
// id from its partition and offset (Config.StampIngress).
func (r *Replica) stampID(rec *kgo.Record, req *protocol.Request) {
	if r.cfg.StampIngress == "" || rec.Topic != r.cfg.StampIngress || req.Env.ID != "" {
		return
	}
	req.Env.ID = "o-" + strconv.Itoa(int(rec.Partition)) + "-" + strconv.FormatInt(rec.Offset, 10)
}

// checkJoin refuses a join configuration that cannot run.
func (c *JoinConfig) check() error {
	switch c.Type {
	case JoinInner, JoinOuter, JoinAny:
	default:
		return fmt.Errorf("replica config: unknown join type %q", c.Type)
	}
	if c.Window <= 0 {
		return fmt.Errorf("replica config: join window %v must be > 0", c.Window)
	}
	if len(c.Sources) < 2 {
		return fmt.Errorf("replica config: a join needs two input topics or more, got %d", len(c.Sources))
	}
	return nil
}

// byRequest partitions a record with a key by the key (murmur2, Kafka's
// default), one without a key but with an sl-id by the id, and anything
// else stickily: the inputs of one request reach the same partition
// number of each edge topic into a join even when an offline record has
// no key.
type byRequest struct{ keyed kgo.Partitioner }

func newByRequest() kgo.Partitioner { return byRequest{kgo.StickyKeyPartitioner(nil)} }

func (p byRequest) ForTopic(topic string) kgo.TopicPartitioner {
	return &byRequestTopic{inner: p.keyed.ForTopic(topic)}
}

type byRequestTopic struct{ inner kgo.TopicPartitioner }

func (t *byRequestTopic) RequiresConsistency(r *kgo.Record) bool {
	return len(r.Key) > 0 || len(protocol.Header(r.Headers, protocol.HeaderID)) > 0
}

func (t *byRequestTopic) Partition(r *kgo.Record, n int) int {
	if id := protocol.Header(r.Headers, protocol.HeaderID); len(r.Key) == 0 && len(id) > 0 {
		h := fnv.New32a()
		h.Write(id)
		return int(h.Sum32() % uint32(n))
	}
	return t.inner.Partition(r, n)
}

func (t *byRequestTopic) OnNewBatch() {
	if o, ok := t.inner.(kgo.TopicPartitionerOnNewBatch); ok {
		o.OnNewBatch()
	}
}
