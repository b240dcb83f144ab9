package streams

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys of the record envelope. docs/PROTOCOL.md is the contract for
// replicas written in other languages; keep the two in step.
const (
	HeaderID          = "sl-id"       // request id; replies carry the id they answer
	HeaderReplyTo     = "sl-reply"    // topic the terminal result goes to; absent offline
	HeaderDeadline    = "sl-deadline" // absolute deadline, Unix nanoseconds, decimal
	HeaderTrace       = "traceparent" // W3C trace context, passed through untouched
	HeaderContentType = "content-type"
	HeaderModel       = "sl-model"   // model id for multiplexed deployments
	HeaderVersion     = "sl-version" // model version the caller asked for
	HeaderCont        = "sl-cont"    // continuation hops: "topic/id,topic/id"
	HeaderStatus      = "sl-status"  // reply or dead letter: an error code (see Code)
	HeaderError       = "sl-error"   // reply or dead letter: the error message
	HeaderSeq         = "sl-seq"     // stream item number, from 0
	HeaderEOS         = "sl-eos"     // end of stream: the number of items sent
	HeaderSource      = "sl-source"  // dead letter: "topic/partition/offset" of the failed record
	HeaderDeployment  = "sl-deployment"
	// HeaderRequestPrefix starts the headers that carry the caller's
	// request headers (x-* names, lower case) along the graph, for rules.
	HeaderRequestPrefix = "h-"
)

// Hop is one step of a continuation: when a deployment finishes a record
// that carries hops, its output becomes the input of the first hop instead
// of going back to the caller.
type Hop struct {
	Topic string
	ID    string
}

// Envelope is what Sluice reads from and writes to record headers.
type Envelope struct {
	ID          string
	ReplyTo     string
	Deadline    time.Time // zero: none
	Trace       string
	ContentType string
	Model       string
	Version     string
	Cont        []Hop
	// Request holds the caller's request headers as record headers
	// (HeaderRequestPrefix + name); they travel with the request.
	Request []kgo.RecordHeader
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
	e.Request = append(e.Request, kgo.RecordHeader{Key: HeaderRequestPrefix + strings.ToLower(name), Value: []byte(value)})
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

// AppendHeaders appends the envelope's non-empty fields to hs.
func (e *Envelope) AppendHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	if e.ID != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderID, Value: []byte(e.ID)})
	}
	if e.ReplyTo != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderReplyTo, Value: []byte(e.ReplyTo)})
	}
	if !e.Deadline.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: HeaderDeadline, Value: strconv.AppendInt(nil, deadlineNanos(e.Deadline), 10)})
	}
	if e.Trace != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderTrace, Value: []byte(e.Trace)})
	}
	if e.ContentType != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(e.ContentType)})
	}
	if e.Model != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderModel, Value: []byte(e.Model)})
	}
	if e.Version != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderVersion, Value: []byte(e.Version)})
	}
	if len(e.Cont) > 0 {
		hs = append(hs, kgo.RecordHeader{Key: HeaderCont, Value: appendHops(nil, e.Cont)})
	}
	if len(e.Request) > 0 {
		hs = append(hs, e.Request...)
	}
	return hs
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

// ErrEnvelope is wrapped by every envelope parse error.
var ErrEnvelope = errors.New("bad envelope")

// ParseEnvelope reads the envelope from a record's headers. Unknown headers
// are ignored so that producers may add their own. On a malformed header it
// still reads every other header (a caller can be told what went wrong
// wherever sl-reply sits) and returns the first error.
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
			ns, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil || ns <= 0 {
				first = cmp.Or(first, fmt.Errorf("%w: header %s %q is not positive Unix nanoseconds", ErrEnvelope, HeaderDeadline, h.Value))
				continue
			}
			e.Deadline = time.Unix(0, ns)
		case HeaderTrace:
			e.Trace = string(h.Value)
		case HeaderContentType:
			e.ContentType = string(h.Value)
		case HeaderModel:
			e.Model = string(h.Value)
		case HeaderVersion:
			e.Version = string(h.Value)
		case HeaderCont:
			hops, err := parseHops(string(h.Value))
			if err != nil {
				first = cmp.Or(first, err)
				continue
			}
			e.Cont = hops
		default:
			if strings.HasPrefix(h.Key, HeaderRequestPrefix) && len(h.Key) > len(HeaderRequestPrefix) {
				e.Request = append(e.Request, h)
			}
		}
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

func parseHops(s string) ([]Hop, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	hops := make([]Hop, 0, len(parts))
	for _, p := range parts {
		topic, id, ok := strings.Cut(p, "/")
		if !ok || topic == "" || id == "" {
			return nil, fmt.Errorf("%w: header %s hop %q is not topic/id", ErrEnvelope, HeaderCont, p)
		}
		hops = append(hops, Hop{Topic: topic, ID: id})
	}
	return hops, nil
}

// Header returns the value of the first header named key, or nil.
func Header(hs []kgo.RecordHeader, key string) []byte {
	for _, h := range hs {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// ErrorReply is the record that answers the request of env with err: to
// its reply topic, under the id the caller waits on.
func ErrorReply(env *Envelope, err error) *kgo.Record {
	return &kgo.Record{Topic: env.ReplyTo, Headers: []kgo.RecordHeader{
		{Key: HeaderID, Value: []byte(env.FinalID())},
		{Key: HeaderStatus, Value: []byte(CodeOf(err))},
		{Key: HeaderError, Value: []byte(err.Error())},
	}}
}

// DeadLetter is the dead letter of rec, failed at deployment with err:
// its key, value and headers, less any earlier failure's, plus the
// error, the record's position and the deployment.
func DeadLetter(topic string, rec *kgo.Record, deployment string, err error) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+4)
	for _, h := range rec.Headers {
		switch h.Key {
		case HeaderStatus, HeaderError, HeaderSource, HeaderDeployment:
		default:
			hs = append(hs, h)
		}
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderStatus, Value: []byte(CodeOf(err))},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: HeaderSource, Value: fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)},
		kgo.RecordHeader{Key: HeaderDeployment, Value: []byte(deployment)},
	)
	return &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Headers: hs}
}
