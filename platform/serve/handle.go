package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"sync"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// ErrForwarded is returned by Result on a future whose value was passed to
// another deployment with RemoteFuture: the value went there directly and
// never came back through this caller.
var ErrForwarded = errors.New("future was forwarded to another deployment")

// Handle calls another deployment of the same application. Declare one as
// a constructor parameter of type *Handle[In, Out] and Bind a deployment
// to it.
type Handle[In, Out any] struct {
	core *handleCore
}

type handleCore struct {
	rt     *runtime
	topic  string // the edge topic from the holder to the target
	target string
}

// handleParam is how construction recognises and fills handle parameters.
type handleParam interface {
	setCore(*handleCore)
	types() (in, out reflect.Type)
}

func (h *Handle[In, Out]) setCore(c *handleCore) { h.core = c }

func (h *Handle[In, Out]) types() (reflect.Type, reflect.Type) {
	return reflect.TypeFor[In](), reflect.TypeFor[Out]()
}

var handleParamType = reflect.TypeFor[handleParam]()

func isHandleType(t reflect.Type) bool { return t.Implements(handleParamType) }

func checkHandleParam(pt reflect.Type, target *Deployment) error {
	if !isHandleType(pt) || pt.Kind() != reflect.Pointer {
		return fmt.Errorf("parameter type %s is not a *serve.Handle, cannot take bound deployment %s", pt, target.name)
	}
	in, out := reflect.New(pt.Elem()).Interface().(handleParam).types()
	if in != target.in || out != target.out {
		return fmt.Errorf("parameter %s does not match deployment %s, which takes %s and returns %s", pt, target.name, target.in, target.out)
	}
	return nil
}

func newHandleParam(pt reflect.Type, c *handleCore) (reflect.Value, error) {
	if !isHandleType(pt) || pt.Kind() != reflect.Pointer {
		return reflect.Value{}, fmt.Errorf("parameter type %s is not a *serve.Handle, cannot take handle to %s", pt, c.target)
	}
	v := reflect.New(pt.Elem())
	v.Interface().(handleParam).setCore(c)
	return v, nil
}

// Remote calls the deployment with in and returns a future of its result.
// Calls made in one invocation are sent together when the first result is
// awaited or the invocation returns, so several Remote calls run in
// parallel.
func (h *Handle[In, Out]) Remote(ctx context.Context, in In) *Future[Out] {
	c := h.newCall(ctx)
	c.value, c.ct, c.encErr = encode(in)
	return &Future[Out]{c: c}
}

// RemoteFuture calls the deployment with the result of f without waiting
// for it here: the replica that produces f's result sends it straight to
// this deployment. Result on f afterwards returns ErrForwarded.
func (h *Handle[In, Out]) RemoteFuture(ctx context.Context, f *Future[In]) *Future[Out] {
	c := h.newCall(ctx)
	c.scope.mu.Lock()
	// A continuation hop names a topic and an id, not a method: a call
	// of a named method takes its input here and is sent on its own.
	if f.c.scope == c.scope && !f.c.sent && f.c.next == nil && c.method == "" {
		f.c.next = c
		c.from = f.c
	} else {
		c.after = f.c // already sent or from elsewhere: wait for it, then send
	}
	c.scope.mu.Unlock()
	return &Future[Out]{c: c}
}

// Stream calls a streaming deployment and ranges over its items as they
// arrive. Breaking out of the loop stops waiting for the rest.
func (h *Handle[In, Out]) Stream(ctx context.Context, in In) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		var zero Out
		value, ct, err := encode(in)
		if err != nil {
			yield(zero, err)
			return
		}
		sc := h.scopeOf(ctx)
		sc.flush(ctx)
		m := modelOf(ctx)
		env := protocol.HandleCall(sc.parent, protocol.Envelope{ContentType: ct, Model: m.model, Version: m.version, Method: methodOf(ctx)})
		p := sc.rt.caller.Start(ctx, &protocol.Request{Topic: h.core.topic, Key: m.key(), Env: env, Value: value})
		defer p.Close()
		for {
			rep, err := p.Next(ctx)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(zero, err)
				return
			}
			v, err := decode[Out](rep.Value)
			if !yield(v, err) || err != nil {
				return
			}
		}
	}
}

func (h *Handle[In, Out]) newCall(ctx context.Context) *call {
	sc := h.scopeOf(ctx)
	c := &call{scope: sc, topic: h.core.topic, id: sc.rt.caller.NextID(), done: make(chan struct{}), model: modelOf(ctx), method: methodOf(ctx)}
	sc.mu.Lock()
	sc.calls = append(sc.calls, c)
	sc.mu.Unlock()
	return c
}

// scopeOf returns the invocation's scope, or a fresh one for calls made
// outside any deployment (a test or a client program).
func (h *Handle[In, Out]) scopeOf(ctx context.Context) *scope {
	if sc, ok := ctx.Value(scopeKey{}).(*scope); ok && sc.rt == h.core.rt {
		return sc
	}
	return &scope{rt: h.core.rt}
}

// Future is the eventual result of a Remote call.
type Future[T any] struct {
	c *call
}

// Result waits, bounded by ctx and the request's deadline, for the value.
func (f *Future[T]) Result(ctx context.Context) (T, error) {
	var zero T
	b, err := f.c.wait(ctx)
	if err != nil {
		return zero, err
	}
	return decode[T](b)
}

// call is one Remote call inside a scope. A chain of calls linked by from
// and next is sent as one record whose continuation header names the
// later hops.
type call struct {
	scope  *scope
	topic  string
	id     string
	value  []byte
	ct     string
	encErr error
	from   *call // its input is from's output, forwarded replica to replica
	next   *call // its output goes to next instead of back here
	after  *call // its input is after's result, awaited here first
	model  modelRef
	method string // sl-method: the method of a class deployment it calls ("" its call)

	sent    bool             // guarded by scope.mu
	pending *streams.Pending // guarded by scope.mu; taken by the one waiter
	done    chan struct{}    // closed when result and err are set
	result  []byte
	err     error
	once    sync.Once
}

func (c *call) settle(b []byte, err error) {
	c.once.Do(func() {
		c.result, c.err = b, err
		close(c.done)
	})
}

func (c *call) wait(ctx context.Context) ([]byte, error) {
	c.scope.flush(ctx)
	c.scope.mu.Lock()
	p, next := c.pending, c.next
	c.pending = nil
	c.scope.mu.Unlock()
	if next != nil {
		return nil, ErrForwarded
	}
	if p != nil {
		rep, err := p.Next(ctx)
		p.Close()
		c.settle(rep.Value, err)
	}
	select {
	case <-c.done:
		return c.result, c.err
	case <-ctx.Done():
		return nil, streams.ContextError(ctx.Err())
	}
}

// scope holds the calls of one deployment invocation.
type scope struct {
	rt     *runtime
	parent protocol.Envelope // what passes to child calls: protocol.HandleCall

	mu    sync.Mutex
	calls []*call // not yet sent
	sent  []*call // chain tails sent, whose replies may still come
}

type scopeKey struct{}

// flush sends every call not yet sent; a forwarded chain goes as one record
// to its first hop, and its last hop's reply comes back here.
func (sc *scope) flush(ctx context.Context) {
	sc.mu.Lock()
	var heads []*call
	for _, c := range sc.calls {
		if c.sent || c.next != nil { // a forwarded call goes with its chain's tail
			continue
		}
		sc.sent = append(sc.sent, c)
		head := c
		for head.from != nil {
			head = head.from
		}
		for x := head; x != nil; x = x.next {
			x.sent = true
		}
		heads = append(heads, head)
	}
	sc.calls = sc.calls[:0]
	sc.mu.Unlock()
	for _, head := range heads {
		sc.send(ctx, head)
	}
}

func (sc *scope) send(ctx context.Context, head *call) {
	tail := head
	var hops []protocol.Hop
	for x := head.next; x != nil; x = x.next {
		hops = append(hops, protocol.Hop{Topic: x.topic, ID: x.id})
		tail = x
	}
	if head.encErr != nil {
		tail.settle(nil, head.encErr)
		return
	}
	start := func(ctx context.Context, value []byte, ct string) *streams.Pending {
		env := protocol.HandleCall(sc.parent, protocol.Envelope{ID: head.id, ContentType: ct, Model: head.model.model, Version: head.model.version, Method: head.method, Cont: hops})
		return sc.rt.caller.Start(ctx, &protocol.Request{Topic: head.topic, Key: head.model.key(), Env: env, Value: value})
	}
	if head.after == nil {
		p := start(ctx, head.value, head.ct)
		sc.mu.Lock()
		tail.pending = p
		sc.mu.Unlock()
		return
	}
	// The input is a future sent earlier: wait for it off this goroutine,
	// which then owns the reply.
	go func() {
		b, err := head.after.wait(ctx)
		if err != nil {
			tail.settle(nil, err)
			return
		}
		p := start(ctx, b, "")
		rep, err := p.Next(ctx)
		p.Close()
		tail.settle(rep.Value, err)
	}()
}

// close stops waiting for calls nobody awaited: their replies are dropped.
func (sc *scope) close() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, c := range sc.sent {
		if c.pending != nil {
			c.pending.Close()
		}
	}
}

type methodKey struct{}

// WithMethod makes the handle calls made with the returned context call
// the method name of a class deployment (a Python deployment's
// handle.name.remote(x)): the records carry it in sl-method. A Go
// deployment has one call and answers invalid_argument to any method.
func WithMethod(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, methodKey{}, name)
}

func methodOf(ctx context.Context) string {
	m, _ := ctx.Value(methodKey{}).(string)
	return m
}

// modelRef is the registry model a handle call names.
type modelRef struct{ model, version string }

type modelKey struct{}

// WithModel makes the handle calls made with the returned context name a
// registry model and a version (a number, "@alias", or "" for the model
// deployment's default), for a deployment of kind model. The calls are
// keyed by the model, so they reach the replicas that hold it.
func WithModel(ctx context.Context, model, version string) context.Context {
	return context.WithValue(ctx, modelKey{}, modelRef{model, version})
}

func modelOf(ctx context.Context) modelRef {
	m, _ := ctx.Value(modelKey{}).(modelRef)
	return m
}

// key is the record key: the model, or nil (the request id) for none.
func (m modelRef) key() []byte {
	if m.model == "" {
		return nil
	}
	return []byte(m.model)
}
