package streams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-serve/sluice/streams/claim"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Caller sends requests and receives their replies on a reply topic of its
// own (one partition, no consumer group). Each caller instance - a gateway,
// a replica process - owns one, so a reply reaches exactly the instance that
// waits for it: no broadcast, and group rebalances of replicas never touch
// it. Duplicate replies (at-least-once redelivery upstream) are dropped by
// request id and stream sequence.
//
// Values over the claim threshold travel as claim checks (WithClaims):
// Start stores a request's value and deletes it once its Pending closes
// after a reply came (the callee read the request by then); a Pending
// closed before any reply leaves its claim to the first reply for its id
// that still comes (orphans), or to the sweeper. A claimed reply is
// fetched off the reading goroutine, handed out in its Pending's order
// (an error or the end waits for the items fetched before it), and
// deleted.
//
// Caller.mu and Pending.mu are never held together.
type Caller struct {
	cl     *kgo.Client
	adm    *kadm.Client
	topic  string
	ids    *IDs
	log    *slog.Logger
	claims *claim.Claims // nil: no store

	mu      sync.Mutex
	waits   map[string]*Pending
	orphans map[string]orphan // request claims of pendings closed before any reply, by id
	closed  bool              // no more background work

	bg       sync.WaitGroup // claim fetches and deletes
	bgCtx    context.Context
	bgCancel context.CancelFunc

	kopts       []kgo.Opt // WithClientOpts
	dropped     atomic.Int64
	produceErrs atomic.Int64
	fetchErrs   atomic.Int64
	done        chan struct{}
}

// CallerOption configures a Caller.
type CallerOption func(*Caller)

// WithClaims carries values over the claims' threshold as claim checks
// (package claim); without it every value goes in its record.
func WithClaims(c *claim.Claims) CallerOption { return func(cl *Caller) { cl.claims = c } }

// WithClientOpts adds options to the caller's franz-go client (hooks
// such as the process's Kafka metrics).
func WithClientOpts(opts ...kgo.Opt) CallerOption {
	return func(cl *Caller) { cl.kopts = append(cl.kopts, opts...) }
}

// NewCaller creates the reply topic for instance and starts reading it.
func NewCaller(ctx context.Context, brokers []string, namer Namer, instance string, log *slog.Logger, opts ...CallerOption) (*Caller, error) {
	topic := namer.Reply(instance)
	var pre Caller // the options that shape the client
	for _, o := range opts {
		o(&pre)
	}
	cl, err := Dial(ctx, brokers, log, append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(time.Second),
	}, pre.kopts...)...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	if err := CreateTopics(ctx, adm, ReplyTopic(topic)); err != nil {
		cl.Close()
		return nil, err
	}
	c := &Caller{
		cl:      cl,
		adm:     adm,
		topic:   topic,
		ids:     NewIDs(),
		log:     log,
		waits:   make(map[string]*Pending),
		orphans: make(map[string]orphan),
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	go c.read()
	return c, nil
}

// Topic is the caller's reply topic.
func (c *Caller) Topic() string { return c.topic }

// Client is the caller's franz-go client, for producing beside requests.
func (c *Caller) Client() *kgo.Client { return c.cl }

// NextID returns a fresh request id.
func (c *Caller) NextID() string { return c.ids.Next() }

// Dropped counts replies that matched no waiter: duplicates, or replies
// that arrived after their caller gave up.
func (c *Caller) Dropped() int64 { return c.dropped.Load() }

// Errors counts failed produces of requests and failed fetches of replies.
func (c *Caller) Errors() (produce, fetch int64) { return c.produceErrs.Load(), c.fetchErrs.Load() }

// Close fails every pending request, stops reading and deletes the reply
// topic, bounded by ctx; claim deletes in flight finish within ctx too.
func (c *Caller) Close(ctx context.Context) {
	c.mu.Lock()
	waits := c.waits
	c.waits = map[string]*Pending{}
	c.mu.Unlock()
	defer c.waitBackground(ctx)
	for _, p := range waits {
		p.fail(&Error{Code: CodeUnavailable, Msg: "caller closed"})
	}
	if err := DeleteTopics(ctx, c.adm, c.topic); err != nil {
		c.log.Warn("reply topic not deleted", "topic", c.topic, "err", err)
	}
	c.cl.Close()
	<-c.done
}

// Start produces req (keyed by its id when req.Key is nil) and returns
// the pending reply. It fills in the id (if empty), the reply topic, and
// the deadline from ctx (if earlier than the request's). The caller must
// Close the Pending when done with it; until then a settled Pending itself
// drops late duplicates.
func (c *Caller) Start(ctx context.Context, req *protocol.Request) *Pending {
	if req.Env.ID == "" {
		req.Env.ID = c.ids.Next()
	}
	req.Env.ReplyTo = c.topic
	if d, ok := ctx.Deadline(); ok && (req.Env.Deadline.IsZero() || d.Before(req.Env.Deadline)) {
		req.Env.Deadline = d
	}
	p := newPending(c, req.Env.FinalID())
	p.deadline = req.Env.Deadline
	p.span = traceCall(ctx, req)
	c.mu.Lock()
	c.waits[p.id] = p
	c.mu.Unlock()

	r := protocol.NewRequest(req.Topic, req.Key, req.Env, req.Value)
	rec := r.Record()
	ref, err := c.claims.Put(ctx, rec, claim.KindRequest)
	if err != nil {
		c.produceErrs.Add(1)
		p.fail(ClaimError(err))
		return p
	}
	p.claim = ref
	c.produce(ctx, rec, p, true)
	return p
}

// ClaimError gives a claim check's failure its code: a store call cut
// off by its context is deadline_exceeded or canceled (checked first: a
// store may wrap them as unavailable), a payload over the limit or a
// reference that cannot be honoured (gone, altered, unreadable) is
// invalid_argument, a reader without a store failed_precondition, a
// store that fails unavailable.
func ClaimError(err error) *Error {
	code := CodeUnavailable
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = CodeCanceled
	case errors.Is(err, claim.ErrTooLarge), errors.Is(err, claim.ErrNotFound), errors.Is(err, claim.ErrMismatch), errors.Is(err, claim.ErrMalformed):
		code = CodeInvalidArgument
	case errors.Is(err, claim.ErrNoStore):
		code = CodeFailedPrecondition
	}
	return &Error{Code: code, Msg: err.Error(), Err: err}
}

// TooLarge explains a produce refused as too large: in a process without a
// claim store, with the size, the limit and how to configure one.
func TooLarge(c *claim.Claims, size int, err error) error {
	if c == nil && errors.Is(err, kerr.MessageTooLarge) {
		return claim.NoStore(size, err)
	}
	return err
}

// produce sends rec for p. A topic deleted and created again (an
// application deleted and deployed again) has a new id that the client
// does not adopt by itself: it is purged and the record sent once more.
func (c *Caller) produce(ctx context.Context, rec *kgo.Record, p *Pending, retry bool) {
	c.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
		case retry && errors.Is(err, kerr.UnknownTopicID):
			go func() { // not from within a promise: Produce may block
				c.cl.PurgeTopicsFromClient(rec.Topic)
				c.produce(ctx, rec, p, false)
			}()
		default:
			c.produceErrs.Add(1)
			p.answered.Store(true) // the request never landed: nobody reads its claim
			err = TooLarge(c.claims, len(rec.Value), err)
			p.fail(&Error{Code: CodeUnavailable, Msg: fmt.Sprintf("produce to %s: %v", rec.Topic, err), Err: err})
		}
	})
}

// Expect registers a waiter for an id whose request someone else produces
// (the tail of a forwarded chain).
func (c *Caller) Expect(id string) *Pending {
	p := newPending(c, id)
	c.mu.Lock()
	c.waits[id] = p
	c.mu.Unlock()
	return p
}

// Call sends a unary request and waits for its reply, bounded by ctx.
func (c *Caller) Call(ctx context.Context, req *protocol.Request) (Reply, error) {
	p := c.Start(ctx, req)
	defer p.Close()
	return p.Next(ctx)
}

func (c *Caller) read() {
	defer close(c.done)
	fetchErrs := FetchErrors{Log: c.log, Msg: "reply fetch failed"}
	for {
		fs := c.cl.PollFetches(context.Background())
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(string, int32, error) { c.fetchErrs.Add(1) })
		fetchErrs.Observe(fs)
		fs.EachRecord(c.deliver)
	}
}

func (c *Caller) deliver(r *kgo.Record) {
	ref, claimed, _ := claim.Find(r.Headers)
	rep, id, err := parseReply(r)
	if err != nil {
		c.dropped.Add(1)
		c.log.Warn("reply dropped", "err", err)
		if claimed {
			c.background(func(ctx context.Context) { c.deleteClaim(ctx, ref) })
		}
		return
	}
	p, orphaned := c.waiter(id)
	if !orphaned.IsZero() {
		// A reply for a request nobody waits for any more: its callee read
		// the request, whose claim can go now.
		c.background(func(ctx context.Context) { c.deleteClaim(ctx, orphaned) })
	}
	if !claimed {
		if p == nil || !p.push(rep) {
			c.dropped.Add(1)
		}
		return
	}
	// A claimed reply is fetched apart, so that one large reply holds up
	// no other; its Pending holds back an error or end that comes after
	// it until it is handed out (fetching).
	if p == nil || !p.fetching() {
		c.dropped.Add(1)
		c.background(func(ctx context.Context) { c.deleteClaim(ctx, ref) })
		return
	}
	if !c.background(func(ctx context.Context) { c.redeem(ctx, p, rep, r) }) {
		c.dropped.Add(1)
		p.fetched(Reply{}, &Error{Code: CodeUnavailable, Msg: "caller closed"})
	}
}

// waiter returns the Pending that waits for id, and marks it answered:
// its request was read. With none, it returns (and forgets) the claim of
// a request whose Pending closed before any reply came.
func (c *Caller) waiter(id string) (*Pending, claim.Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.waits[id]; p != nil {
		p.answered.Store(true)
		return p, claim.Ref{}
	}
	o, ok := c.orphans[id]
	if !ok {
		return nil, claim.Ref{}
	}
	delete(c.orphans, id)
	return nil, o.ref
}

// redeem fetches a claimed reply for p, hands it out, and deletes its
// claim.
func (c *Caller) redeem(ctx context.Context, p *Pending, rep Reply, r *kgo.Record) {
	value, ref, err := c.claims.Fetch(ctx, r.Headers, r.Value)
	defer c.deleteClaim(ctx, ref)
	if err != nil {
		c.fetchErrs.Add(1)
		p.fetched(Reply{}, ClaimError(fmt.Errorf("reply: %w", err)))
		return
	}
	rep.Value = value
	if !p.fetched(rep, nil) {
		c.dropped.Add(1)
	}
}

func (c *Caller) deleteClaim(ctx context.Context, ref claim.Ref) {
	if ref.IsZero() {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, claim.DeleteTimeout)
	defer cancel()
	if err := c.claims.Delete(dctx, ref); err != nil {
		c.log.Warn("claim not deleted; it expires", "key", ref.Key, "err", err)
	}
}

// background runs fn on a tracked goroutine; false once the caller closed.
func (c *Caller) background(fn func(context.Context)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.bg.Go(func() { fn(c.bgCtx) })
	return true
}

// waitBackground waits for the background work, bounded by ctx, then
// cancels what is left.
func (c *Caller) waitBackground(ctx context.Context) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.bgCancel()
		<-done
	}
	c.bgCancel()
}

// orphan is the claim of a request whose Pending closed before any reply
// came: the callee may not have read it yet.
type orphan struct {
	ref     claim.Ref
	expires time.Time // the request's deadline, or the claim's MaxOrphanAge after the close
}

// MaxOrphans bounds the request claims a caller keeps to delete when a
// late reply comes; past it, the oldest are left to the sweeper.
const MaxOrphans = 10000

// MaxOrphanAge is how long a caller keeps an orphaned request claim
// whose request has no deadline; after that the sweeper deletes it.
const MaxOrphanAge = time.Hour

// forget stops waiting for p. The claim of its request is returned to be
// deleted now when a reply came (the callee read the request) or the
// request never landed; otherwise it is kept until the first reply for
// the id, the request's deadline, or MaxOrphanAge (then the sweeper).
func (c *Caller) forget(p *Pending, ref claim.Ref) (deleteNow claim.Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waits[p.id] == p {
		delete(c.waits, p.id)
	}
	if ref.IsZero() || p.answered.Load() || c.closed {
		return ref
	}
	now := time.Now()
	exp := p.deadline
	if exp.IsZero() || exp.After(now.Add(MaxOrphanAge)) {
		exp = now.Add(MaxOrphanAge)
	}
	if len(c.orphans) >= MaxOrphans {
		c.pruneOrphans(now)
	}
	if len(c.orphans) < MaxOrphans {
		c.orphans[p.id] = orphan{ref: ref, expires: exp}
	}
	return claim.Ref{}
}

// pruneOrphans drops the orphans that expired and, if still full, the
// half that expire first; c.mu is held. What is dropped expires in the
// store (the sweeper).
func (c *Caller) pruneOrphans(now time.Time) {
	for id, o := range c.orphans {
		if now.After(o.expires) {
			delete(c.orphans, id)
		}
	}
	if len(c.orphans) < MaxOrphans {
		return
	}
	exps := make([]time.Time, 0, len(c.orphans))
	for _, o := range c.orphans {
		exps = append(exps, o.expires)
	}
	slices.SortFunc(exps, time.Time.Compare)
	cut := exps[len(exps)/2]
	for id, o := range c.orphans {
		if !o.expires.After(cut) {
			delete(c.orphans, id)
		}
	}
}

// Reply is one record of an answer: the whole answer of a unary call, or
// one item of a stream.
type Reply struct {
	Value       []byte
	ContentType string
	Seq         int64 // stream item number; -1 for a unary reply
	eos         int64 // end-of-stream count; -1 otherwise
	err         error

	// HTTP is an HTTP ingress's response status and headers, on a unary
	// reply or a stream's first item; nil otherwise.
	HTTP *protocol.HTTPResponse
}

// Streamed reports whether the reply is an item of a stream.
func (r Reply) Streamed() bool { return r.Seq >= 0 }

// parseReply reads a reply record and the id it answers.
func parseReply(r *kgo.Record) (Reply, string, error) {
	pr, err := protocol.ParseReply(r)
	if err != nil {
		return Reply{}, pr.ID, err
	}
	rep := Reply{Value: pr.Value, ContentType: pr.ContentType, Seq: pr.Seq, HTTP: pr.HTTP, eos: pr.EOS}
	if pr.Status != CodeOK {
		rep.err = &Error{Code: pr.Status, Msg: pr.Error}
	}
	return rep, pr.ID, nil
}

// Pending is a request waiting for its reply or replies. Items of a stream
// are handed out in order, whatever order duplicates and retries bring them
// in.
type Pending struct {
	c        *Caller
	id       string
	claim    claim.Ref   // the request's claimed value, deleted once read
	deadline time.Time   // the request's; zero for none
	answered atomic.Bool // a reply came, or the request never landed: its claim can go

	mu      sync.Mutex
	ready   []Reply         // in order, not yet taken
	later   map[int64]Reply // stream items that arrived ahead of a gap
	next    int64           // next stream item expected
	total   int64           // items announced by end of stream; -1 until then
	end     error           // set once: io.EOF or the failure
	notify  chan struct{}   // cap 1
	settled bool
	// inFetch counts the claimed replies being fetched; held is an error
	// reply that came after them, applied once they are handed out.
	inFetch int
	held    error

	span trace.Span // the call's client span (trace.go); nil when tracing is off
}

func newPending(c *Caller, id string) *Pending {
	return &Pending{c: c, id: id, total: -1, notify: make(chan struct{}, 1)}
}

// ID is the request id the pending waits on.
func (p *Pending) ID() string { return p.id }

// push takes one reply record; it reports false for a duplicate.
func (p *Pending) push(r Reply) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pushLocked(r)
}

// fetching counts a claimed reply about to be fetched; false when p
// settled (the reply is dropped).
func (p *Pending) fetching() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.settled {
		return false
	}
	p.inFetch++
	return true
}

// fetched hands out a claimed reply (or fails p with err, the fetch's
// failure) and applies an error that waited for it; it reports false
// for a duplicate.
func (p *Pending) fetched(r Reply, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFetch--
	ok := false
	switch {
	case err != nil && !p.settled:
		p.settle(err)
		p.wake()
	case err == nil:
		ok = p.pushLocked(r)
	}
	if p.inFetch == 0 && p.held != nil && !p.settled {
		p.settle(p.held)
		p.wake()
	}
	return ok
}

// pushLocked is push with p.mu held.
func (p *Pending) pushLocked(r Reply) bool {
	if p.settled {
		return false
	}
	switch {
	case r.err != nil && p.inFetch > 0:
		// Items read before the error are still being fetched: they go
		// out first (fetched applies it).
		if p.held != nil {
			return false
		}
		p.held = r.err
		return true
	case r.err != nil:
		p.settle(r.err)
	case r.eos >= 0:
		if p.total >= 0 || r.eos < p.next {
			return false // a duplicate end, or one that contradicts what came
		}
		p.total = r.eos
	case r.Seq < 0: // unary
		p.ready = append(p.ready, r)
		p.settle(io.EOF)
	case r.Seq < p.next, p.total >= 0 && r.Seq >= p.total:
		return false
	case r.Seq == p.next:
		p.ready = append(p.ready, r)
		p.next++
		for {
			nr, ok := p.later[p.next]
			if !ok {
				break
			}
			delete(p.later, p.next)
			p.ready = append(p.ready, nr)
			p.next++
		}
	default:
		if _, dup := p.later[r.Seq]; dup {
			return false
		}
		if p.later == nil {
			p.later = make(map[int64]Reply)
		}
		p.later[r.Seq] = r
	}
	if p.total >= 0 && p.next >= p.total && !p.settled {
		p.settle(io.EOF)
	}
	p.wake()
	return true
}

// wake tells a Next that waits that something changed.
func (p *Pending) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// settle ends the pending; p.mu is held.
func (p *Pending) settle(err error) {
	p.settled = true
	p.end = err
}

func (p *Pending) fail(err error) {
	p.mu.Lock()
	if !p.settled {
		p.settle(err)
	}
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Next returns the next reply: the only one of a unary call, or the next
// stream item. It returns io.EOF after the last, the request's *Error if
// it failed, and a deadline or cancel error if ctx ends first.
func (p *Pending) Next(ctx context.Context) (Reply, error) {
	for {
		p.mu.Lock()
		if len(p.ready) > 0 {
			r := p.ready[0]
			p.ready = p.ready[1:]
			p.mu.Unlock()
			return r, nil
		}
		end := p.end
		p.mu.Unlock()
		if end != nil {
			return Reply{}, end
		}
		select {
		case <-p.notify:
		case <-ctx.Done():
			return Reply{}, ContextError(ctx.Err())
		}
	}
}

func (p *Pending) isSettled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.settled
}

// Close stops waiting; later replies for the id are dropped. The
// request's claimed value, if any, is deleted now if a reply came (its
// callee read it), else when the first reply for the id comes (a call
// nobody awaits: its callee may not have read it yet), else it expires.
func (p *Pending) Close() {
	p.traceEnd()
	ref := p.claim
	p.claim = claim.Ref{}
	if ref = p.c.forget(p, ref); !ref.IsZero() {
		p.c.background(func(ctx context.Context) { p.c.deleteClaim(ctx, ref) })
	}
}
