package protocol

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Request is a request record: to an application's ingress, along a
// dataflow edge, a handle call, or a forwarded continuation. The value is
// the payload; the headers are the envelope.
type Request struct {
	Topic string
	Key   []byte
	Value []byte
	Env   Envelope
}

// NewRequest is a request a caller starts (a gateway, a handle call):
// keyed by key, or by the request id when key is nil.
func NewRequest(topic string, key []byte, env Envelope, value []byte) Request {
	if key == nil && env.ID != "" {
		key = []byte(env.ID)
	}
	return Request{Topic: topic, Key: key, Value: value, Env: env}
}

// Record encodes the request.
func (r *Request) Record() *kgo.Record {
	return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Env.AppendHeaders(nil)}
}

// ParseRequest decodes a request record. On a malformed header it returns
// what it could read with the error (see ParseEnvelope).
func ParseRequest(rec *kgo.Record) (Request, error) {
	env, err := ParseEnvelope(rec.Headers)
	return Request{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Env: env}, err
}

// Edge is the request an output becomes on the dataflow edge (or the hop
// a routing rule chose) to topic: the input's key and whole envelope,
// with the output's content type and no method (the next deployment is
// called, not the input's method).
func Edge(in *Request, topic string, value []byte, contentType string) Request {
	env := in.Env
	env.ContentType = contentType
	env.Method = ""
	env.Request = slices.Clip(env.Request)
	return Request{Topic: topic, Key: in.Key, Value: value, Env: env}
}

// Mirror is the copy an output sends down a mirror edge: an Edge without
// sl-reply, marked sl-mirror, so that nothing its branch answers reaches
// the caller or the output topic.
func Mirror(in *Request, topic string, value []byte, contentType string) Request {
	m := Edge(in, topic, value, contentType)
	m.Env.ReplyTo = ""
	m.Env.Mirror = true
	return m
}

// Forward is the request an output becomes when its input carries a
// continuation: to the first hop's topic, keyed by and under the hop's
// id, with the later hops as its continuation, the output's content type,
// no method, and everything else of the input's envelope. ok is false
// when the input has no continuation.
func Forward(in *Request, value []byte, contentType string) (fwd Request, ok bool) {
	if len(in.Env.Cont) == 0 {
		return Request{}, false
	}
	next := in.Env.Cont[0]
	env := in.Env
	env.ID = next.ID
	env.Cont = nil
	if len(in.Env.Cont) > 1 {
		env.Cont = in.Env.Cont[1:]
	}
	env.ContentType = contentType
	env.Method = ""
	env.Request = slices.Clip(env.Request)
	return Request{Topic: next.Topic, Key: []byte(next.ID), Value: value, Env: env}, true
}

// HandleCall is the envelope of a call a handler makes while it serves
// parent: the call's own id, content type, model, version, method and
// continuation; the parent's trace context and caller headers; the
// earlier of the two deadlines. The reply topic is the caller's own, set
// when the call is sent; the parent's model does not pass to the call.
func HandleCall(parent, call Envelope) Envelope {
	call.ReplyTo = ""
	if call.Deadline.IsZero() || !parent.Deadline.IsZero() && parent.Deadline.Before(call.Deadline) {
		call.Deadline = parent.Deadline
	}
	call.Trace, call.TraceState = parent.Trace, parent.TraceState
	call.Request = slices.Clip(parent.Request)
	return call
}
