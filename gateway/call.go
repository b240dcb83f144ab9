package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// The gateway's one call path. Every transport (application routes over
// REST, the OIP over REST and gRPC, Predict and PredictStream) decodes its
// request into a call and encodes the replies of one exchange; admission,
// the deadline, the envelope's trace and caller headers, the rules, the
// produce and the metrics are the exchange's, written once:
//
//	x, err := s.open(ctx, name, refuse) // an in-flight slot, or RESOURCE_EXHAUSTED at once
//	defer x.close()               // slot, deadline and pending reply let go; counted once
//	... the transport reads and decodes its payload (x.fail on error) ...
//	err = x.send(c)               // deadline, rules, produce
//	rep, err := x.next()          // the reply; a stream's items, then io.EOF
//
// A REST transport opens before it reads the body, so a full gateway
// refuses without reading up to MaxBody bytes; gRPC has its message read
// by then. A body declared past MaxBody is refused before admission (413,
// not 429: it can never succeed, so it must not be retried).

// call is one request as a transport decoded it.
type call struct {
	rt      route
	timeout time.Duration     // the caller's; zero: the application's default
	env     protocol.Envelope // from the transport: trace, caller headers, content type, model, version
	body    []byte
	model   string // the multiplexed model id (MultiplexHeader); "" when none
}

// MultiplexHeader is the HTTP header (or gRPC metadata) naming the model
// a multiplexed deployment serves a call with, as Ray Serve names it.
const MultiplexHeader = "serve_multiplexed_model_id"

// maxModelID bounds a multiplexed model id: the registry's longest name.
const maxModelID = 128

// multiplex makes a call that names a model for a multiplexed deployment
// carry it in sl-model and keys it by it (keyOf): every call for one
// model goes to one partition, so to the replica that holds the model, as
// calls for a registry model do, unless the model is hot enough to be
// spread. An id that is not safe as a key is refused.
func (c *call) multiplex(keyOf func(rt route, id string) []byte) error {
	if c.model == "" {
		return nil
	}
	if err := checkModelID(c.model); err != nil {
		return err
	}
	c.env.Model = c.model
	if c.rt.key == nil {
		c.rt.key = keyOf(c.rt, c.model)
	}
	return nil
}

// multiplexKey is the record key of a call for model id on rt's
// application: the id, or, for an id with a large share of the
// application's multiplexed calls, one of the keys "id#n" that land on
// partitions of replicas that do not hold it yet (spreader, models.go),
// from the models reports of the application's replicas (a Python
// deployment that multiplexes models publishes them). The replica reads
// the id from sl-model, never from the key. Without reports, the id.
func (s *Server) multiplexKey(rt route, id string) []byte {
	if s.cfg.Reports == nil || rt.parts <= 0 {
		return []byte(id)
	}
	sp, ok := s.muxes.Load(rt.app)
	if !ok {
		sp, _ = s.muxes.LoadOrStore(rt.app, newSpreader())
	}
	return sp.(*spreader).key(id, rt.parts, 0, func() map[int32]string { return s.cfg.Reports.Owners(rt.app, rt.ingress) })
}

// checkModelID accepts what the Python SDK does: a registry name, and
// after one '@' a version, at most maxModelID bytes in all.
func checkModelID(id string) error {
	if len(id) > maxModelID {
		return streams.Errorf(streams.CodeInvalidArgument, "%s %q: length %d is over %d", MultiplexHeader, id, len(id), maxModelID)
	}
	name, version, hasVersion := strings.Cut(id, "@")
	if err := registry.ValidName(MultiplexHeader, name, maxModelID); err != nil {
		return err
	}
	if hasVersion {
		return registry.ValidName(MultiplexHeader+" version", version, maxModelID)
	}
	return nil
}

// exchange is one call from admission to its last reply.
type exchange struct {
	s       *Server
	ctx     context.Context
	name    string // what it is counted under: the application or model called; "" when none was found
	version string // the model version that answered, or was asked for
	infer   bool   // an OIP inference: counted in the OIP's statistics too
	start   time.Time
	code    streams.Code
	release func()
	cancel  context.CancelFunc
	p       *streams.Pending
	span    trace.Span // the server span (trace.go); nil when tracing is off
	trace   string     // the caller's trace id, for the logs when not tracing
	route   string     // the route called, for the access log
}

// open admits a call counted under name, unless refuse (non-nil) already
// says why it cannot be served. On refusal the returned exchange still
// needs close, which counts it.
func (s *Server) open(ctx context.Context, name string, refuse error) (*exchange, error) {
	x := &exchange{s: s, ctx: ctx, name: name, start: time.Now(), code: streams.CodeOK, release: func() {}, cancel: func() {}}
	if refuse != nil {
		return x, x.fail(refuse)
	}
	release, err := s.admit()
	if err != nil {
		return x, x.fail(err)
	}
	x.release = release
	return x, nil
}

// fail records err as the call's outcome (the first failure counts) and
// returns it.
func (x *exchange) fail(err error) error {
	if err != nil && x.code == streams.CodeOK {
		x.code = streams.CodeOf(err)
	}
	return err
}

// send bounds the call by its deadline, applies the application's rules
// and produces the request.
func (x *exchange) send(c *call) error {
	if err := c.multiplex(x.s.multiplexKey); err != nil {
		return x.fail(err)
	}
	x.ctx, x.cancel = x.s.deadline(x.ctx, c.rt, c.timeout)
	x.traceStart(c)
	rt, err := x.s.applyRules(x.ctx, c.rt, &c.env, c.body)
	if err != nil {
		return x.fail(err)
	}
	x.p = x.s.send(x.ctx, rt, c.env, c.body)
	return nil
}

// next returns the reply, or a stream's next item and io.EOF after its
// last.
func (x *exchange) next() (streams.Reply, error) {
	rep, err := x.p.Next(x.ctx)
	if err != nil && !errors.Is(err, io.EOF) {
		x.fail(err)
	}
	return rep, err
}

// id is the request id the caller is told.
func (x *exchange) id() string { return x.p.ID() }

func (x *exchange) close() {
	if x.p != nil {
		x.p.Close()
	}
	x.cancel()
	x.release()
	x.traceEnd()
	x.s.metrics.observe(x.name, x.code, time.Since(x.start))
	x.accessLog()
	if x.infer && x.name != "" {
		x.s.metrics.inferred(x.name, x.version, x.code, time.Since(x.start))
	}
}

// Trace context, caller headers and the multiplexed model id come from
// one of two places, whatever the transport: HTTP headers or gRPC
// metadata. These functions are the only readers of either.

// httpEnvelope starts the envelope of a REST call: the W3C traceparent
// and tracestate, and the caller's x-* headers.
func httpEnvelope(h http.Header) protocol.Envelope {
	env := protocol.Envelope{Trace: h.Get("traceparent"), TraceState: traceState(h.Values("tracestate"))}
	forwardHeaders(&env, h)
	return env
}

// maxTraceState bounds the tracestate a request carries along the graph:
// 32 list members of W3C's longest keys and values fit well under it. A
// longer one is dropped whole, as W3C Trace Context lets a hop do.
const maxTraceState = 8192

// traceState joins the values of a tracestate header sent more than
// once into one list, as W3C Trace Context says to; "" when it is too
// long to carry.
func traceState(vs []string) string {
	s := strings.Join(vs, ",") // one value: itself, no copy
	if len(s) > maxTraceState {
		return ""
	}
	return s
}

// grpcEnvelope starts the envelope of a gRPC call from its metadata, and
// extra (Predict's headers field), which wins over metadata of the same
// name.
func grpcEnvelope(ctx context.Context, extra map[string]string) protocol.Envelope {
	md, _ := metadata.FromIncomingContext(ctx)
	md = md.Copy()
	for name, v := range extra {
		md.Set(name, v) // lower-cases name
	}
	var env protocol.Envelope
	if vs := md.Get("traceparent"); len(vs) > 0 {
		env.Trace = vs[0]
	}
	env.TraceState = traceState(md.Get("tracestate"))
	forwardHeaders(&env, md)
	return env
}

// httpModel is the multiplexed model id a REST call names.
func httpModel(h http.Header) string { return h.Get(MultiplexHeader) }

// grpcModel is the multiplexed model id a gRPC call names in its
// metadata, or in extra (Predict's headers), which wins.
func grpcModel(ctx context.Context, extra map[string]string) string {
	for name, v := range extra {
		if strings.EqualFold(name, MultiplexHeader) {
			return v
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if vs := md.Get(MultiplexHeader); len(vs) > 0 {
		return vs[0]
	}
	return ""
}
