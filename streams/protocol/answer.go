package protocol

import "github.com/twmb/franz-go/pkg/kgo"

// Answer is the record an output that goes no further becomes: a reply
// when a caller waits (the request has sl-reply), else an output record
// to the application's output topic, keyed like the request. seq is the
// item number of a streaming deployment's output, -1 for a unary one.
func Answer(in *Request, output string, seq int64, value []byte, contentType string) *kgo.Record {
	return HTTPAnswer(in, output, seq, nil, value, contentType)
}

// HTTPAnswer is Answer with an HTTP ingress's response status and headers
// (nil: none), for the unary answer or the first item of a stream.
func HTTPAnswer(in *Request, output string, seq int64, resp *HTTPResponse, value []byte, contentType string) *kgo.Record {
	if in.Env.ReplyTo != "" {
		r := UnaryReply(&in.Env, value, contentType)
		r.Seq, r.HTTP = seq, resp
		return r.Record()
	}
	o := UnaryOutput(in, output, value, contentType)
	o.Seq, o.HTTP = seq, resp
	return o.Record()
}

// End is the record that ends the stream of n items in caused: to the
// caller, or to the output topic.
func End(in *Request, output string, n int64) *kgo.Record {
	if in.Env.ReplyTo != "" {
		r := EndReply(&in.Env, n)
		return r.Record()
	}
	o := EndOutput(in, output, n)
	return o.Record()
}

// Failure is the record a failed request becomes: an error reply when a
// caller waits, else the dead letter of rec, the record as it was read
// (in is what could be parsed of it).
func Failure(in *Request, rec *kgo.Record, deadLetter, deployment string, code Code, msg string) *kgo.Record {
	if in.Env.ReplyTo != "" {
		r := ErrorReply(&in.Env, code, msg)
		return r.Record()
	}
	d := NewDeadLetter(deadLetter, rec, deployment, code, msg)
	return d.Record()
}
