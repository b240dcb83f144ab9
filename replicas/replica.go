// Package replicas runs deployments: one Replica is one member of a
// deployment's consumer group that processes records with bounded
// concurrency and produces their results downstream or to the caller.
package replicas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Input is one record handed to a Handler.
type Input struct {
	Env   protocol.Envelope
	Topic string // the edge or ingress topic it came from
	Key   []byte
	Value []byte
}

// Output receives a handler's results: one Emit for a unary deployment, one
// per item for a streaming one.
type Output interface {
	Emit(value []byte, contentType string) error
}

// Handler processes one record. Its error is answered to the caller or
// written to the dead-letter topic; an *streams.Error keeps its code.
type Handler interface {
	Handle(ctx context.Context, in *Input, out Output) error
}

// Assignee is implemented by handlers that want to know which partitions
// their replica owns (the model server reports them, so that the gateway
// spreads a hot model over distinct replicas). Assigned gets the whole
// set after every change; it must not block.
type Assignee interface {
	Assigned(partitions map[string][]int32)
}

// Router chooses where a deployment's output goes when its edges carry
// rules (conditions, transforms, splits). No hop leaves the output as the
// answer: to the caller, or to the output topic.
type Router interface {
	Route(ctx context.Context, in *Input, output []byte, contentType string) ([]Hop, error)
}

// Hop is one record a routed output becomes.
type Hop struct {
	Topic       string
	Value       []byte
	ContentType string // "": the output's own
	// Mirror sends a copy whose branch answers nobody (protocol.Mirror);
	// an output whose only hops are mirrors is also the answer.
	Mirror bool
}

// Streamer is implemented by handlers whose outputs are streams: each Emit
// is an item, and an end-of-stream record follows the last.
type Streamer interface {
	Streams() bool
}

// HTTPIngress is implemented by handlers that serve HTTP requests (an
// application's HTTP ingress deployment). The replica refuses a record
// that carries no HTTP request (no sl-http-method) as invalid_argument,
// without running the handler, and hands the handler an HTTPOutput.
type HTTPIngress interface {
	HTTPIngress() bool
}

// HTTPOutput is the Output a replica hands an HTTPIngress handler.
// Respond sets the HTTP status and headers of the answer; it is called
// once, before the first Emit. streamed makes the record's outputs the
// items of a stream (each Emit one, then the end), whatever the
// deployment's kind: an HTTP handler decides per request.
type HTTPOutput interface {
	Output
	Respond(resp *protocol.HTTPResponse, streamed bool)
}

// Config describes one replica.
type Config struct {
	Brokers    []string
	Group      string
	Topics     []string // the deployment's incoming edge topics (and ingress)
	Successors []string // dataflow edge topics the output also goes to
	Router     Router   // when set, chooses among the successors per output
	Output     string   // the app's output topic, for results nobody waits for
	DeadLetter string   // the app's dead-letter topic
	Deployment string   // for dead-letter headers and logs

	// Identity, reported on the status topic (Publisher): the application,
	// this replica among the deployment's, and the spec it runs (the
	// deployment's revision and the application's generation).
	App        string
	Instance   string
	Revision   string
	Generation int64

	MaxOngoing   int           // records processed at once; default 100
	Ordered      bool          // one record at a time per partition, in offset order
	ExactlyOnce  bool          // outputs and input offsets commit in one transaction (see txn.go)
	DrainTimeout time.Duration // soft stop and revoke wait at most this long; default 20s

	// TransactionTimeout is how long the broker keeps an exactly-once
	// replica's transaction open; default TransactionTimeout.
	TransactionTimeout time.Duration

	// InstanceID makes the replica a static member of its group
	// (KIP-345): a replica restarted with the same ID takes its
	// partitions back at once, with no rebalance, and one that stops
	// softly leaves the group explicitly. It names a replica slot: the
	// same across restarts of the slot, distinct between slots and
	// between versions of a deployment running side by side (two live
	// members with one ID fence each other). Letters, digits, '.', '_'
	// and '-', at most 249. Empty: a dynamic member.
	InstanceID string
	// SessionTimeout is how long the broker waits for a silent member (a
	// killed or frozen process) before it gives the member's partitions
	// to the others; default DefaultSessionTimeout.
	SessionTimeout time.Duration

	// Claims carries values over its threshold as claim checks: a claimed
	// input is fetched before the handler sees it, an output over the
	// threshold is stored and referenced. Nil: no store, every value in
	// its record.
	Claims *claim.Claims

	// Join makes the deployment a join of its incoming dataflow edges
	// (JoinConfig); nil: every record is an input of its own.
	Join *JoinConfig
	// StampIngress, the application's ingress topic when its graph has a
	// join, gives each record read from it without an sl-id the id
	// "o-<partition>-<offset>": the same on every reading, so the joins
	// downstream match its inputs by request and know a redelivery.
	StampIngress string

	Log  *slog.Logger
	Opts []kgo.Opt // extra client options (tests)

	// Metrics exports the replica to Prometheus (nil: not exported);
	// MetricsAddr is where its process serves /metrics, for its Report
	// (scrapers find replica processes on the status topic).
	Metrics     *Metrics
	MetricsAddr string
}

// DefaultSessionTimeout is a replica's default session timeout: the
// lowest a broker accepts by default (Kafka's and the embedded broker's
// group.min.session.timeout.ms), twelve heartbeats. A replica that dies
// and is not restarted loses its partitions this long after its last
// heartbeat; franz-go's own default is 45s.
const DefaultSessionTimeout = 6 * time.Second

// A claimed input whose store cannot be reached (claim.ErrUnavailable) is
// fetched again, waiting ClaimRetryMin after the first failure, twice as
// long after each next one, ClaimRetryMax at most: until the record's
// deadline for a record that has one, else for as long as the replica
// runs and owns its partition (a store outage holds the partition, as a
// broker outage holds a produce; it dead-letters nothing).
const (
	ClaimRetryMin = 100 * time.Millisecond
	ClaimRetryMax = 5 * time.Second
)

func (c *Config) defaults() error {
	if c.Group == "" || len(c.Topics) == 0 {
		return errors.New("replica config: group and topics are required")
	}
	if c.Output == "" || c.DeadLetter == "" {
		return errors.New("replica config: output and dead-letter topics are required")
	}
	if c.MaxOngoing <= 0 {
		c.MaxOngoing = 100
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 20 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = TransactionTimeout
	}
	if err := checkInstanceID(c.InstanceID); err != nil {
		return err
	}
	if c.Join != nil {
		if err := c.Join.check(); err != nil {
			return err
		}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.InstanceID != "" {
		c.Log = c.Log.With("instance", c.InstanceID)
	}
	return nil
}

// checkInstanceID applies the broker's rule for a group.instance.id.
func checkInstanceID(id string) error {
	if len(id) > 249 {
		return fmt.Errorf("replica config: instance id %q is longer than 249 characters", id)
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("replica config: instance id %q: bad character %q (use letters, digits, '.', '_' and '-')", id, r)
		}
	}
	return nil
}

// Stats are a replica's counters.
type Stats struct {
	Processed, Failed, Expired, DeadLettered, Ongoing int64
	Partitions                                        int
	// Mirrored counts answers dropped because their request was a
	// mirrored copy (sl-mirror): shadow traffic's answers.
	Mirrored int64
}

// Replica is one consumer-group member of a deployment.
//
// Offsets: records of a partition complete in any order; the replica marks
// for commit only the end of the completed prefix, only after the outputs
// of every record in it were acknowledged by the broker, and never for a
// partition it no longer owns. A revoke waits (bounded) for the partition's
// records in flight, then commits synchronously.
type Replica struct {
	cfg    Config
	spans  spanNames // trace.go
	h      Handler
	stream bool
	http   bool // an HTTPIngress handler
	cl     *kgo.Client
	txn    *kgo.GroupTransactSession // ExactlyOnce: cl's session
	opts   []kgo.Opt                 // ExactlyOnce: the session's options, to dial it again
	// spoiled: a record of the open transaction was abandoned, so the
	// transaction must abort (ExactlyOnce).
	spoiled atomic.Bool

	mu    sync.Mutex // guards parts and every partition's queue
	parts map[tp]*partition
	idle  *sync.Cond // broadcast when records complete or a drain times out

	ongoing atomic.Int64
	freed   chan struct{} // cap 1: a slot came free
	drained chan struct{} // cap 1: no record is in flight any more (closes an exactly-once window)
	// gate: an exactly-once join's window ending (write) or a join's
	// window timer starting work in the open transaction (read); kick
	// (cap 1) opens a transaction's window for such work.
	gate    sync.RWMutex
	kick    chan struct{}
	work    chan *slot   // unordered records for the workers; cap MaxOngoing
	workers atomic.Int64 // workers started; at least one per record in flight, at most MaxOngoing
	stats   struct{ processed, failed, expired, deadLettered, mirrored atomic.Int64 }
	handled latencyWindow  // the handler's recent run times, for Report (latency.go)
	join    *joiner        // nil unless the deployment joins its inputs
	bg      sync.WaitGroup // claim deletes; added to under mu until closed
	closed  bool           // under mu: no more background work

	running   context.Context // Run's: ends at the soft stop (set before the first record)
	storeDown atomic.Bool     // a claim fetch found the store unavailable; logged once per outage

	started   time.Time
	joined    time.Time     // first assignment (under mu); zero before
	ready     chan struct{} // closed once Ready
	readyOnce sync.Once
	changed   func() // called after every assignment change (a Publisher's poke)

	obs observers // the replica's metrics (metrics.go)
}

type tp struct {
	topic     string
	partition int32
}

// partition tracks the records in flight from one assigned partition.
type partition struct {
	queue   []*slot // in offset order
	revoked bool
	order   chan *slot // Ordered mode: the partition's worker queue

	// Joins (markLocked): the completed records whose join's other
	// inputs are not completed yet, and the last completed record.
	held []*slot
	last *kgo.Record
	tail []*slot // completed past the commit point (joinreplay.go)
	done doneSet // what the last commit recorded as done past it
}

type slot struct {
	rec   *kgo.Record
	part  *partition
	done  bool
	group *joinGroup // the fired join the record is an input of
}

// New creates a replica and its client; Run starts consuming.
func New(ctx context.Context, cfg Config, h Handler) (_ *Replica, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &Replica{cfg: cfg, h: h, parts: make(map[tp]*partition), freed: make(chan struct{}, 1), drained: make(chan struct{}, 1), kick: make(chan struct{}, 1), work: make(chan *slot, cfg.MaxOngoing),
		started: time.Now(), ready: make(chan struct{})}
	r.idle = sync.NewCond(&r.mu)
	r.nameSpans()
	r.obs = cfg.Metrics.observe(r)
	defer func() {
		if err != nil { // no Run will forget it: its series go now
			cfg.Metrics.forget(r)
		}
	}()
	if cfg.Join != nil {
		r.join = newJoiner(r, *cfg.Join)
	}
	if s, ok := h.(Streamer); ok {
		r.stream = s.Streams()
	}
	if hi, ok := h.(HTTPIngress); ok {
		r.http = hi.HTTPIngress()
	}
	commit := []kgo.Opt{
		kgo.AutoCommitMarks(),
		// Commit often: the autoscaler reads lag from committed offsets.
		kgo.AutoCommitInterval(250 * time.Millisecond),
	}
	if cfg.ExactlyOnce {
		commit = transactionalOpts(&cfg)
	}
	opts := append(append([]kgo.Opt{
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Records of aborted transactions are no work (and no lag).
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, commit...), []kgo.Opt{
		// Heartbeat often: a member learns of a rebalance (a replica
		// added by the autoscaler) at its next heartbeat.
		kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.OnPartitionsAssigned(r.assigned),
		kgo.OnPartitionsRevoked(r.revoked),
		kgo.OnPartitionsLost(r.lost),
		// A partition that joins a fetch session late (no committed offset
		// yet: reset to the start) waits for the fetch in flight: keep
		// that wait short, or a replica woken from zero answers late.
		kgo.FetchMaxWait(250 * time.Millisecond),
	}...)
	opts = append(opts, cfg.Opts...)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	opts = append(opts, kgo.RecordPartitioner(newByRequest()))
	if cfg.Join != nil {
		// The same partition number of every input topic to one member
		// (coPartitioned); cooperative-sticky only while a member that
		// lacks it is in the group (a roll onto the join).
		opts = append(opts, kgo.Balancers(coPartitioned{}, kgo.CooperativeStickyBalancer()))
		if !cfg.ExactlyOnce {
			opts = append(opts, kgo.AutoCommitInterval(time.Hour)) // commitLoop commits, with metadata
		}
	}
	if cfg.ExactlyOnce {
		r.opts = opts
		if err := r.dialSession(ctx); err != nil {
			return nil, err
		}
		return r, nil
	}
	cl, err := streams.Dial(ctx, cfg.Brokers, cfg.Log, opts...)
	if err != nil {
		return nil, err
	}
	r.cl = cl
	return r, nil
}

// Stats returns the replica's counters.
func (r *Replica) Stats() Stats {
	r.mu.Lock()
	n := len(r.parts)
	r.mu.Unlock()
	return Stats{
		Processed:    r.stats.processed.Load(),
		Failed:       r.stats.failed.Load(),
		Expired:      r.stats.expired.Load(),
		DeadLettered: r.stats.deadLettered.Load(),
		Ongoing:      r.ongoing.Load(),
		Partitions:   n,
		Mirrored:     r.stats.mirrored.Load(),
	}
}

// timed observes the handler's time since start; deferred around it.
func (r *Replica) timed(start time.Time) {
	now := time.Now()
	r.handled.observe(now, now.Sub(start))
	r.obs.handled(start)
}

// Run consumes until ctx ends, then stops softly: no new records, in-flight
// records finish (bounded by DrainTimeout), offsets are committed, and the
// replica leaves the group (a static member too, see leave). It returns
// nil after a soft stop; an exactly-once replica returns an error when
// its transactions cannot go on (see runTransactions).
func (r *Replica) Run(ctx context.Context) error {
	defer func() { r.cl.Close() }() // an exactly-once replica may have dialled a new one
	defer r.cfg.Metrics.forget(r)
	r.running = ctx
	var runErr error
	if r.txn != nil {
		runErr = r.runTransactions(ctx)
	} else {
		if r.join != nil {
			go r.join.commitLoop(ctx)
		}
		r.consume(ctx)
	}
	if r.join != nil {
		r.join.drop(nil) // pending joins are the next owner's
	}
	r.drain()
	// Whatever is still running is the next owner's: forget every partition
	// so leaving the group does not wait for it a second time.
	r.mu.Lock()
	for k := range r.parts {
		r.forgetPartition(k)
	}
	r.closed = true
	r.mu.Unlock()
	r.bg.Wait()
	close(r.work)
	cctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
	defer cancel()
	if err := r.cl.CommitMarkedOffsets(r.commitCtx(cctx)); err != nil {
		r.cfg.Log.Warn("final commit failed", "group", r.cfg.Group, "err", err)
	}
	r.leave(cctx)
	return runErr
}

// consume is Run's loop for an at-least-once replica.
func (r *Replica) consume(ctx context.Context) {
	max := int64(r.cfg.MaxOngoing)
	fetchErrs := streams.FetchErrors{Log: r.cfg.Log, Msg: "fetch failed"}
	for ctx.Err() == nil {
		free := max - r.ongoing.Load()
		if free <= 0 { // full: stop fetching until a slot frees
			select {
			case <-r.freed:
			case <-ctx.Done():
			}
			continue
		}
		fs := r.cl.PollRecords(ctx, int(free))
		if fs.IsClientClosed() {
			break
		}
		fetchErrs.Observe(fs)
		r.obs.fetched(fs)
		fs.EachRecord(r.dispatch)
	}
}

// leave takes a static member out of its group after its final commit,
// so that its partitions move now and not a session timeout later:
// franz-go leaves on Close for a dynamic member only. A dynamic member
// is left to Close.
//
// The request names the member ID and no instance ID. Kafka then removes
// this member only: if a newer member took the instance ID over (and
// fenced this one), the answer is UNKNOWN_MEMBER_ID and the newer one
// stays. The embedded broker (kfake) resolves an instance ID to whoever
// holds it now, and would remove the newer member.
func (r *Replica) leave(ctx context.Context) {
	if r.cfg.InstanceID == "" {
		return
	}
	member, _ := r.cl.GroupMetadata()
	// Stop managing the group first (for a static member this sends
	// nothing), or the next heartbeat, finding the member gone, rejoins.
	if err := r.cl.LeaveGroupContext(ctx); err != nil {
		r.cfg.Log.Warn("group leave failed", "group", r.cfg.Group, "err", err)
		return
	}
	if member == "" { // never joined
		return
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = r.cfg.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = member
	m.Reason = kmsg.StringPtr("replica stopping")
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, r.cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil && len(resp.Members) > 0 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	switch {
	case errors.Is(err, kerr.UnknownMemberID):
		// Already out: franz-go left itself (a static member closing
		// between the two halves of a cooperative rebalance does), the
		// session had expired, or a newer member took the instance ID.
		r.cfg.Log.Debug("group already left", "group", r.cfg.Group, "member", member)
	case err != nil:
		r.cfg.Log.Warn("group leave failed; partitions move after the session timeout", "group", r.cfg.Group, "err", err)
	default:
		r.cfg.Log.Info("left group", "group", r.cfg.Group, "member", member)
	}
}

// drain waits for every record in flight, bounded by DrainTimeout.
func (r *Replica) drain() {
	r.mu.Lock()
	r.waitLocked(func() bool { return r.ongoing.Load() == 0 })
	r.mu.Unlock()
	if n := r.ongoing.Load(); n > 0 {
		r.cfg.Log.Warn("drain timed out; records will be redelivered", "group", r.cfg.Group, "ongoing", n)
	}
}

// waitLocked waits until done reports true or DrainTimeout passes; r.mu is
// held, and released while waiting.
func (r *Replica) waitLocked(done func() bool) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	wake := time.AfterFunc(r.cfg.DrainTimeout, func() {
		r.mu.Lock()
		r.idle.Broadcast()
		r.mu.Unlock()
	})
	defer wake.Stop()
	for !done() && time.Now().Before(deadline) {
		r.idle.Wait()
	}
}

func (r *Replica) assigned(ctx context.Context, cl *kgo.Client, got map[string][]int32) {
	var done map[tp]doneSet
	if r.join != nil {
		done = r.fetchDone(ctx, cl, got) // cl: r.cl may not be set yet
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.tellAssignedLocked()
	if r.joined.IsZero() {
		r.joined = time.Now()
		// A member that joins a cooperative group is given partitions in
		// the rebalance after the one that admitted it; one that gets
		// none by then is beyond the partition count, and ready as it is.
		time.AfterFunc(ReadyGrace, r.markReady)
	}
	if len(got) > 0 {
		defer r.markReady()
	}
	n := 0
	for t, ps := range got {
		for _, p := range ps {
			part := &partition{done: done[tp{t, p}]}
			if r.cfg.Ordered {
				part.order = make(chan *slot, r.cfg.MaxOngoing)
				go r.orderedWorker(part.order)
			}
			r.parts[tp{t, p}] = part
			n++
		}
	}
	if n > 0 {
		r.cfg.Log.Info("partitions assigned", "group", r.cfg.Group, "added", n, "owned", len(r.parts))
	}
}

// revoked waits for the revoked partitions' records in flight (bounded),
// then commits what they marked. Records still running after the wait are
// not marked: the next owner processes them again.
func (r *Replica) revoked(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	if r.join != nil {
		r.join.drop(lost)
	}
	r.mu.Lock()
	if r.txn == nil { // a transaction with revoked partitions aborts: nothing to wait for
		r.waitLocked(func() bool { return !r.busy(lost) })
	}
	if n := r.forget(lost); n > 0 {
		r.cfg.Log.Info("partitions revoked", "group", r.cfg.Group, "revoked", n, "owned", len(r.parts))
	}
	r.tellAssignedLocked()
	r.mu.Unlock()
	if err := cl.CommitMarkedOffsets(r.commitCtx(ctx)); err != nil {
		r.cfg.Log.Warn("commit on revoke failed", "group", r.cfg.Group, "err", err)
	}
}

func (r *Replica) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if r.join != nil {
		r.join.drop(lost)
	}
	r.mu.Lock()
	if n := r.forget(lost); n > 0 {
		r.cfg.Log.Warn("partitions lost", "group", r.cfg.Group, "lost", n, "owned", len(r.parts))
	}
	r.tellAssignedLocked()
	r.mu.Unlock()
}

// ReadyGrace is how long a member that joined its group with no
// partitions waits for some before it counts as ready anyway.
const ReadyGrace = 2 * time.Second

// Ready is closed once the replica holds partitions, or has been a
// member of its group for ReadyGrace without any (more replicas than
// partitions): a roll stops the replica it replaces only then.
func (r *Replica) Ready() <-chan struct{} { return r.ready }

func (r *Replica) markReady() {
	r.readyOnce.Do(func() { close(r.ready) })
}

// tellAssignedLocked hands the owned partitions to an Assignee handler
// and pokes the report; r.mu is held.
func (r *Replica) tellAssignedLocked() {
	r.obs.rebalanced()
	if r.changed != nil {
		r.changed()
	}
	a, ok := r.h.(Assignee)
	if !ok {
		return
	}
	owned := map[string][]int32{}
	for k := range r.parts {
		owned[k.topic] = append(owned[k.topic], k.partition)
	}
	for _, ps := range owned {
		slices.Sort(ps)
	}
	a.Assigned(owned)
}

// busy reports whether any of the partitions has records in flight; r.mu is held.
func (r *Replica) busy(ps map[string][]int32) bool {
	for t, list := range ps {
		for _, p := range list {
			if part := r.parts[tp{t, p}]; part != nil && len(part.queue) > 0 {
				return true
			}
		}
	}
	return false
}

// forget drops the partitions and returns how many it owned; r.mu is held.
func (r *Replica) forget(ps map[string][]int32) int {
	n := 0
	for t, list := range ps {
		for _, p := range list {
			if r.parts[tp{t, p}] != nil {
				n++
			}
			r.forgetPartition(tp{t, p})
		}
	}
	return n
}

// forgetPartition marks the partition revoked, so its records in flight
// are never marked for commit, and drops it; r.mu is held.
func (r *Replica) forgetPartition(k tp) {
	part := r.parts[k]
	if part == nil {
		return
	}
	part.revoked = true
	if part.order != nil {
		close(part.order)
	}
	delete(r.parts, k)
}

func (r *Replica) dispatch(rec *kgo.Record) {
	r.mu.Lock()
	part := r.parts[tp{rec.Topic, rec.Partition}]
	if part == nil { // revoked between poll and dispatch: its new owner has it
		r.mu.Unlock()
		return
	}
	s := &slot{rec: rec, part: part}
	part.queue = append(part.queue, s)
	r.ongoing.Add(1)
	if part.order != nil {
		part.order <- s // never blocks: at most MaxOngoing records are in flight
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	// Long-lived workers, started as load needs them (a goroutine per record
	// would grow a fresh stack for every record). Only the poll loop starts
	// workers, and it keeps one per record in flight, so no record ever
	// waits behind a slow one while a slot is free.
	if r.workers.Load() < r.ongoing.Load() {
		r.workers.Add(1)
		go r.worker()
	}
	r.work <- s // never blocks: at most MaxOngoing records are in flight
}

func (r *Replica) worker() {
	for s := range r.work {
		r.process(s)
	}
}

// orderedWorker processes one partition's records in offset order. Records
// still queued when the partition is revoked are skipped: their next owner
// processes them, and running them here too would break the order.
func (r *Replica) orderedWorker(q <-chan *slot) {
	for s := range q {
		r.mu.Lock()
		revoked := s.part.revoked
		r.mu.Unlock()
		if revoked {
			r.complete(s) // not marked: the partition is gone
			continue
		}
		r.process(s)
	}
}

// complete marks s done and, if it ends the partition's completed prefix,
// marks the prefix for commit.
func (r *Replica) complete(s *slot) {
	r.mu.Lock()
	s.done = true
	part := s.part
	var last *kgo.Record
	var popped []*slot // with joins only
	for len(part.queue) > 0 && part.queue[0].done {
		last = part.queue[0].rec
		if r.join != nil {
			popped = append(popped, part.queue[0])
		}
		part.queue[0] = nil
		part.queue = part.queue[1:]
	}
	switch {
	case r.join != nil:
		r.markLocked(part, last, popped)
	case last != nil && !part.revoked:
		r.cl.MarkCommitRecords(last)
	}
	drained := r.ongoing.Add(-1) == 0
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

// process runs the handler on one record and routes what it yields. The
// slot completes once every output the record caused is acknowledged.
func (r *Replica) process(s *slot) {
	rec := s.rec
	r.obs.pickedUp(rec)
	run := &run{r: r, s: s, rec: rec, stream: r.stream}
	run.pending.Store(1)
	defer run.release()

	req, err := protocol.ParseRequest(rec)
	r.stampID(rec, &req)
	r.traceRecord(run, &req)
	run.req = req // what could be read answers a malformed record too
	if err != nil {
		run.fail(streams.Errorf(streams.CodeInvalidArgument, "%w", err))
		return
	}
	env := &req.Env
	if r.http {
		if _, err := env.HTTPRequest(); err != nil {
			run.fail(streams.Errorf(streams.CodeInvalidArgument, "deployment %s is an HTTP ingress: %w", r.cfg.Deployment, err))
			return
		}
	}
	if env.Method != "" {
		// A Go deployment has one call; running it for a named method
		// would answer a question nobody asked.
		run.fail(streams.Errorf(streams.CodeInvalidArgument, "deployment %s has no method %q: a Go deployment is called without sl-method", r.cfg.Deployment, env.Method))
		return
	}
	if env.Expired(time.Now()) {
		r.stats.expired.Add(1)
		run.fail(&streams.Error{Code: streams.CodeDeadlineExceeded, Msg: "deadline passed before processing"})
		return
	}
	ctx := run.traceContext()
	if !env.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, env.Deadline)
		defer cancel()
	}
	value, ref, err := r.fetchClaim(ctx, s)
	switch {
	case errors.Is(err, errAbandoned):
		// The replica stops or lost the partition while the store is
		// down: the record is left to the partition's next owner.
		run.abandon()
		return
	case errors.Is(err, claim.ErrNotFound) && ref.Kind() == claim.KindRecord && env.ReplyTo != "":
		// A replica deletes a record's claim once it answered it to a
		// waiting caller: this is a redelivery of work done.
		r.cfg.Log.Debug("claim gone: record already answered", "key", ref.Key, "source", protocol.Source{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}.String())
		return
	case err != nil:
		run.fail(streams.ClaimError(err))
		return
	}
	run.claim = ref
	in := &Input{Env: req.Env, Topic: rec.Topic, Key: rec.Key, Value: value}
	if r.join != nil {
		if in = r.join.arrive(run, in); in == nil {
			return // held for its join, dropped as late, or failed
		}
	}
	run.ctx, run.in = ctx, in
	if err := r.call(ctx, in, run); err != nil {
		run.fail(err)
		return
	}
	r.stats.processed.Add(1)
	if run.stream && !env.Mirror {
		run.send(protocol.End(&run.req, r.cfg.Output, run.seq))
	}
}

// errAbandoned: a claim fetch gave up because the replica stops or the
// record's partition was revoked.
var errAbandoned = errors.New("claim fetch abandoned")

// fetchClaim fetches s's claimed value, if any, retrying while the store
// is unavailable (ClaimRetryMin, ClaimRetryMax): until ctx's deadline
// (the record's), or, for a record without one, for as long as the
// replica runs and owns the partition (then errAbandoned). The outage is
// logged once, and its end.
func (r *Replica) fetchClaim(ctx context.Context, s *slot) ([]byte, claim.Ref, error) {
	rec := s.rec
	wait := ClaimRetryMin
	for {
		value, ref, err := r.cfg.Claims.Fetch(ctx, rec.Headers, rec.Value)
		if !errors.Is(err, claim.ErrUnavailable) {
			if err == nil && r.storeDown.CompareAndSwap(true, false) {
				r.cfg.Log.Info("claim store available again", "group", r.cfg.Group)
			}
			return value, ref, err
		}
		if r.storeDown.CompareAndSwap(false, true) {
			r.cfg.Log.Warn("claim store unavailable; retrying claimed records until it answers", "group", r.cfg.Group, "key", ref.Key, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ref, fmt.Errorf("%w (retried until the deadline: %w)", err, ctx.Err())
		case <-r.running.Done():
			t.Stop()
			return nil, ref, errAbandoned
		}
		r.mu.Lock()
		revoked := s.part.revoked
		r.mu.Unlock()
		if revoked {
			return nil, ref, errAbandoned
		}
		wait = min(2*wait, ClaimRetryMax)
	}
}

// call runs the handler, turning a panic into an internal error.
func (r *Replica) call(ctx context.Context, in *Input, out Output) (err error) {
	defer r.timed(time.Now())
	ctx, span := r.traceHandler(ctx)
	defer traceHandled(span, &err)
	defer func() {
		if p := recover(); p != nil {
			r.cfg.Log.Error("deployment panicked", "panic", p, "stack", string(debug.Stack()))
			err = streams.Errorf(streams.CodeInternal, "deployment %s panicked: %v", r.cfg.Deployment, p)
		}
	}()
	return r.h.Handle(ctx, in, out)
}

// run is one record's processing: it counts the produces in flight so the
// slot completes after the last acknowledgement.
type run struct {
	r       *Replica
	s       *slot
	rec     *kgo.Record
	req     protocol.Request // what could be parsed of rec
	ctx     context.Context
	in      *Input
	seq     int64
	failed  atomic.Bool // answered or dead-lettered as failed (once)
	pending atomic.Int64
	claim   claim.Ref   // the input's claimed value
	dead    atomic.Bool // dead-lettered: its claim stays for a replay
	joined  []*run      // the other inputs of the join this run fired: they complete with it

	span     trace.Span      // the record's process span (trace.go); nil when tracing is off
	traceCtx context.Context // the context Start gave span, which holds it

	stream bool                   // outputs are items: the deployment streams, or its HTTP handler chose to
	resp   *protocol.HTTPResponse // an HTTP ingress's status and headers, for the first answer
}

// abandon leaves the record to the partition's next owner: nothing
// after it in the partition is marked for commit by this replica (it
// stops, or lost the partition), so the record is read again.
func (x *run) abandon() {
	x.r.spoiled.Store(true)
	x.r.mu.Lock()
	x.s.part.revoked = true
	x.r.mu.Unlock()
}

// release ends one produce (or the handler). After the last, the record
// completes, and the claim of a record this replica answered to a waiting
// caller is deleted: nobody reads it again but a redelivery, which finds
// it gone and skips the record (see process).
func (x *run) release() {
	if x.pending.Add(-1) != 0 {
		return
	}
	if ref := x.claim; ref.Kind() == claim.KindRecord && x.req.Env.ReplyTo != "" && !x.dead.Load() {
		x.r.background(func() { x.r.deleteClaim(ref) })
	}
	for _, y := range x.joined { // after the join's outputs were acknowledged
		y.unhold()
	}
	x.traceEnd()
	x.r.complete(x.s)
}

// background runs fn on a tracked goroutine, unless the replica stopped.
func (r *Replica) background(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.bg.Go(fn)
	}
}

func (r *Replica) deleteClaim(ref claim.Ref) {
	ctx, cancel := context.WithTimeout(context.Background(), claim.DeleteTimeout)
	defer cancel()
	if err := r.cfg.Claims.Delete(ctx, ref); err != nil {
		r.cfg.Log.Warn("claim not deleted; it expires", "key", ref.Key, "err", err)
	}
}

// Respond makes the record's answer an HTTP response (HTTPOutput).
func (x *run) Respond(resp *protocol.HTTPResponse, streamed bool) {
	x.resp = resp
	x.stream = x.stream || streamed
}

// Emit routes one output: along the continuation, to the successors, to
// the caller, or to the output topic.
func (x *run) Emit(value []byte, contentType string) error {
	switch {
	case len(x.req.Env.Cont) > 0:
		if x.stream {
			return streams.Errorf(streams.CodeInvalidArgument, "a streaming deployment's result cannot be forwarded to another deployment")
		}
		fwd, _ := protocol.Forward(&x.req, value, contentType)
		x.send(fwd.Record())
	case x.r.cfg.Router != nil && !x.stream:
		sent, err := x.route(value, contentType)
		if err != nil {
			return err
		}
		if !sent {
			x.answer(value, contentType)
		}
	case len(x.r.cfg.Successors) > 0:
		for _, t := range x.r.cfg.Successors {
			e := protocol.Edge(&x.req, t, value, contentType)
			x.send(e.Record())
		}
	default:
		x.answer(value, contentType)
	}
	x.seq++
	return nil
}

// answer sends an output that goes no further: to the caller, or to the
// output topic when nobody waits.
func (x *run) answer(value []byte, contentType string) {
	if x.req.Env.Mirror { // shadow traffic: nobody gets its answer
		x.r.stats.mirrored.Add(1)
		return
	}
	seq := int64(-1)
	if x.stream {
		seq = x.seq
	}
	x.send(protocol.HTTPAnswer(&x.req, x.r.cfg.Output, seq, x.resp, value, contentType))
	x.resp = nil // on the first answer only
}

// route sends value where the router says and reports whether it went
// anywhere.
func (x *run) route(value []byte, contentType string) (bool, error) {
	hops, err := x.r.cfg.Router.Route(x.ctx, x.in, value, contentType)
	if err != nil || len(hops) == 0 {
		return false, err
	}
	sent := false
	for _, h := range hops {
		build := protocol.Edge
		if h.Mirror {
			build = protocol.Mirror
		} else {
			sent = true
		}
		e := build(&x.req, h.Topic, h.Value, cmp.Or(h.ContentType, contentType))
		x.send(e.Record())
	}
	return sent, nil
}

// send produces rec, a value over the claim threshold as a claim check
// (never a dead letter's: it is the record as read, claim included).
func (x *run) send(rec *kgo.Record) {
	x.pending.Add(1)
	var ref claim.Ref
	if rec.Topic != x.r.cfg.DeadLetter {
		kind := claim.KindRecord
		if rec.Topic == x.req.Env.ReplyTo {
			kind = claim.KindReply
		}
		size := len(rec.Value)
		var err error
		if ref, err = x.r.cfg.Claims.Put(context.Background(), rec, kind); err != nil {
			x.produced(rec, size, ref, err)
			return
		}
	}
	x.r.cl.Produce(context.Background(), rec, func(rec *kgo.Record, err error) { x.produced(rec, len(rec.Value), ref, err) })
}

// produced handles the outcome of one send: ref is the claim it stored.
func (x *run) produced(rec *kgo.Record, size int, ref claim.Ref, err error) {
	if err != nil && !ref.IsZero() { // the record never landed: nobody reads its claim
		x.r.background(func() { x.r.deleteClaim(ref) })
	}
	// A caller that waits gets an error now, naming the cause (an answer
	// too large, a claim that could not be stored, an edge gone), not its
	// deadline; when the caller cannot be reached (its reply topic is
	// gone), or nobody waits, the record is dead-lettered.
	var claimErr *claim.Error
	local := errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, claim.ErrTooLarge) || errors.As(err, &claimErr)
	reachable := x.req.Env.ReplyTo != "" && (rec.Topic != x.req.Env.ReplyTo || local)
	if err != nil {
		err = streams.TooLarge(x.r.cfg.Claims, size, err)
	}
	switch {
	case err != nil && rec.Topic != x.r.cfg.DeadLetter && reachable && !x.failed.Load():
		x.log().Warn("output produce failed; answering the caller with the error", "topic", rec.Topic, "err", err)
		code := streams.CodeUnavailable
		if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, claim.ErrTooLarge) {
			code = streams.CodeInternal // the same answer would fail again
		}
		x.fail(streams.Errorf(code, "the answer could not be delivered: produce to %s: %v", rec.Topic, err))
	case err != nil && rec.Topic != x.r.cfg.DeadLetter:
		x.log().Warn("output produce failed", "topic", rec.Topic, "err", err)
		x.deadLetter(streams.Errorf(streams.CodeUnavailable, "produce to %s: %v", rec.Topic, err))
	case err != nil:
		x.log().Error("dead letter lost", "topic", rec.Topic, "err", err)
	}
	x.release()
}

// fail answers the caller with err, or dead-letters the record when nobody
// waits for it.
func (x *run) fail(err error) {
	if !x.failed.CompareAndSwap(false, true) {
		return
	}
	x.r.stats.failed.Add(1)
	x.r.obs.failed(streams.CodeOf(err))
	x.traceFail(err)
	if x.req.Env.ReplyTo == "" {
		x.r.stats.deadLettered.Add(1)
		x.dead.Store(true)
	}
	x.send(protocol.Failure(&x.req, x.rec, x.r.cfg.DeadLetter, x.r.cfg.Deployment, streams.CodeOf(err), err.Error()))
}

// deadLetter dead-letters the record whoever waits for it: an output of
// it could not be produced.
func (x *run) deadLetter(err error) {
	x.r.stats.deadLettered.Add(1)
	x.dead.Store(true)
	d := protocol.NewDeadLetter(x.r.cfg.DeadLetter, x.rec, x.r.cfg.Deployment, streams.CodeOf(err), err.Error())
	x.send(d.Record())
}
