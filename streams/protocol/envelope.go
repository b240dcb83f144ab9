package protocol

import (
	"cmp"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Hop is one step of a continuation: when a deployment finishes a record
// that carries hops, its output becomes the input of the first hop instead
// of going back to the caller.
type Hop struct {
	Topic string
	ID    string
}

// Envelope is what the headers of a request record say: every request
// (ingress, edge, handle call, forwarded continuation) carries one.
type Envelope struct {
	ID       string
	ReplyTo  string
	Deadline time.Time // zero: none
	Trace    string    // W3C traceparent
	// TraceState is the W3C tracestate that travels with Trace: vendor
	// entries a hop keeps whether or not it traces.
	TraceState  string
	ContentType string
	Model       string
	Version     string
	// Method names the method of a class deployment the request calls
	// (sl-method); "" is the deployment's one call (Python's __call__).
	// Set by a handle call alone: edges and forwards do not carry it.
	Method string
	Cont   []Hop
	// Request holds the caller's request headers as record headers
	// (HeaderRequestPrefix + name); they travel with the request.
	Request []kgo.RecordHeader
	// HTTP is the HTTP request of a record for an HTTP ingress
	// (sl-http-* headers); nil on every other record.
	HTTP *HTTPRequest
	// Mirror marks a copy sent down a mirror edge (sl-mirror): it has no
	// sl-reply, and what its branch would answer is dropped, not
	// written to the output topic.
	Mirror bool
}

// RequestHeaders returns the caller's request headers by name (lower
// case); nil when there are none.
func (e *Envelope) RequestHeaders() map[string]string {
	if len(e.Request) == 0 {
		return nil
	}
	m := make(map[string]string, len(e.Request))
	for _, h := range e.Request {
		m[h.Key[len(HeaderRequestPrefix):]] = string(h.Value)
	}
	return m
}

// AddRequestHeader records one of the caller's request headers.
func (e *Envelope) AddRequestHeader(name, value string) {
	e.Request = append(e.Request, header(HeaderRequestPrefix+strings.ToLower(name), value))
}

// Expired reports whether the deadline has passed at now.
func (e *Envelope) Expired(now time.Time) bool {
	return !e.Deadline.IsZero() && !now.Before(e.Deadline)
}

// FinalID is the id the caller waits on: the last hop's id when the
// request carries a continuation, else the request's own id.
func (e *Envelope) FinalID() string {
	if n := len(e.Cont); n > 0 {
		return e.Cont[n-1].ID
	}
	return e.ID
}

// AppendHeaders appends the envelope's non-empty fields to hs, in the
// order of the header table of docs/PROTOCOL.md.
func (e *Envelope) AppendHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	if e.ID != "" {
		hs = append(hs, header(HeaderID, e.ID))
	}
	if e.ReplyTo != "" {
		hs = append(hs, header(HeaderReplyTo, e.ReplyTo))
	}
	if !e.Deadline.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: HeaderDeadline, Value: strconv.AppendInt(nil, deadlineNanos(e.Deadline), 10)})
	}
	if e.Trace != "" {
		hs = append(hs, header(HeaderTrace, e.Trace))
	}
	if e.TraceState != "" {
		hs = append(hs, header(HeaderTraceState, e.TraceState))
	}
	if e.ContentType != "" {
		hs = append(hs, header(HeaderContentType, e.ContentType))
	}
	if e.Model != "" {
		hs = append(hs, header(HeaderModel, e.Model))
	}
	if e.Version != "" {
		hs = append(hs, header(HeaderVersion, e.Version))
	}
	if e.Method != "" {
		hs = append(hs, header(HeaderMethod, e.Method))
	}
	if len(e.Cont) > 0 {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCont, Value: appendHops(nil, e.Cont)})
	}
	if e.HTTP != nil {
		hs = e.HTTP.appendHeaders(hs)
	}
	if e.Mirror {
		hs = append(hs, header(HeaderMirror, "1"))
	}
	return append(hs, e.Request...)
}

// deadlineNanos is t in Unix nanoseconds, clamped to what the header can
// say: a deadline past year 2262 means "none in practice", and one at or
// before 1970 has passed.
func deadlineNanos(t time.Time) int64 {
	switch {
	case t.After(maxDeadline):
		return math.MaxInt64
	case !t.After(time.Unix(0, 0)):
		return 1
	}
	return t.UnixNano()
}

var maxDeadline = time.Unix(0, math.MaxInt64)

// ParseEnvelope reads the envelope from a request record's headers.
// Unknown headers are ignored so that producers may add their own; of a
// repeated header the last counts. On a malformed header it still reads
// every other header (a caller can be told what went wrong wherever
// sl-reply sits) and returns the first error, a *ParseError.
func ParseEnvelope(hs []kgo.RecordHeader) (Envelope, error) {
	var e Envelope
	var first error
	for _, h := range hs {
		switch h.Key {
		case HeaderID:
			e.ID = string(h.Value)
		case HeaderReplyTo:
			e.ReplyTo = string(h.Value)
		case HeaderDeadline:
			ns, err := parseCount(HeaderDeadline, h.Value)
			if err != nil || ns == 0 {
				first = cmp.Or(first, error(badHeader(HeaderDeadline, h.Value, "positive Unix nanoseconds")))
				continue
			}
			e.Deadline = time.Unix(0, ns)
		case HeaderTrace:
			e.Trace = string(h.Value)
		case HeaderTraceState:
			e.TraceState = string(h.Value)
		case HeaderContentType:
			e.ContentType = string(h.Value)
		case HeaderModel:
			e.Model = string(h.Value)
		case HeaderVersion:
			e.Version = string(h.Value)
		case HeaderMethod:
			e.Method = string(h.Value)
		case HeaderCont:
			hops, err := parseHops(h.Value)
			if err != nil {
				first = cmp.Or(first, err)
				continue
			}
			e.Cont = hops
		case HeaderMirror:
			e.Mirror = len(h.Value) > 0 && string(h.Value) != "0"
		default:
			if ok, err := httpRequestField(&e.HTTP, h); ok {
				first = cmp.Or(first, err)
				continue
			}
			if strings.HasPrefix(h.Key, HeaderRequestPrefix) && len(h.Key) > len(HeaderRequestPrefix) {
				e.Request = append(e.Request, h)
			}
		}
	}
	if e.HTTP != nil && e.HTTP.zero() {
		e.HTTP = nil // only empty sl-http-* values: none
	}
	return e, first
}

func appendHops(b []byte, hops []Hop) []byte {
	for i, h := range hops {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, h.Topic...)
		b = append(b, '/')
		b = append(b, h.ID...)
	}
	return b
}

// parseHops reads "topic/id,topic/id": the topic ends at the first '/',
// the id may hold more; neither may be empty nor hold a ','. An empty
// value is no hops.
func parseHops(v []byte) ([]Hop, error) {
	if len(v) == 0 {
		return nil, nil
	}
	parts := strings.Split(string(v), ",")
	hops := make([]Hop, 0, len(parts))
	for _, p := range parts {
		topic, id, ok := strings.Cut(p, "/")
		if !ok || topic == "" || id == "" {
			return nil, &ParseError{Header: HeaderCont, Reason: strconv.Quote(p) + " is not a hop topic/id"}
		}
		hops = append(hops, Hop{Topic: topic, ID: id})
	}
	return hops, nil
}
