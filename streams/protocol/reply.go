package protocol

import (
	"cmp"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Reply is a record to a caller's reply topic: the answer of a unary
// request, an item or the end of a stream, or a failure. It has no key.
type Reply struct {
	Topic       string // the caller's reply topic (the request's sl-reply)
	ID          string // the id the caller waits on
	ContentType string
	Value       []byte
	Seq         int64  // stream item number; -1: not an item
	EOS         int64  // end of stream: the number of items sent; -1: not the end
	Status      Code   // failure: its code; CodeOK: no failure
	Error       string // failure: the message
	// HTTP is an HTTP ingress's response status and headers, on a unary
	// answer or the first item of a stream; nil otherwise.
	HTTP *HTTPResponse
}

// ReplyKind is what a reply says.
type ReplyKind int

// The kinds of reply, in the order a parser decides them: a failure
// first, then an end of stream, then an item; otherwise unary.
const (
	ReplyUnary ReplyKind = iota // the whole answer
	ReplyItem                   // one item of a stream (sl-seq)
	ReplyEnd                    // the end of a stream (sl-eos)
	ReplyError                  // a failure (sl-status); it also ends a stream
)

// Kind says what the reply is.
func (r *Reply) Kind() ReplyKind {
	switch {
	case r.Status != CodeOK:
		return ReplyError
	case r.EOS >= 0:
		return ReplyEnd
	case r.Seq >= 0:
		return ReplyItem
	}
	return ReplyUnary
}

// UnaryReply answers the request of in with value.
func UnaryReply(in *Envelope, value []byte, contentType string) Reply {
	return Reply{Topic: in.ReplyTo, ID: in.FinalID(), ContentType: contentType, Value: value, Seq: -1, EOS: -1}
}

// ItemReply is item seq (from 0) of the stream that answers in.
func ItemReply(in *Envelope, seq int64, value []byte, contentType string) Reply {
	return Reply{Topic: in.ReplyTo, ID: in.FinalID(), ContentType: contentType, Value: value, Seq: seq, EOS: -1}
}

// EndReply ends the stream that answers in after n items.
func EndReply(in *Envelope, n int64) Reply {
	return Reply{Topic: in.ReplyTo, ID: in.FinalID(), Seq: -1, EOS: n}
}

// ErrorReply answers the request of in with a failure; an empty code is
// internal (a failure always has one).
func ErrorReply(in *Envelope, code Code, msg string) Reply {
	return Reply{Topic: in.ReplyTo, ID: in.FinalID(), Seq: -1, EOS: -1, Status: cmp.Or(code, CodeInternal), Error: msg}
}

// Record encodes the reply: sl-id always; content-type when set; sl-seq,
// sl-eos when not negative; sl-status and sl-error on a failure.
func (r *Reply) Record() *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, 4)
	hs = append(hs, header(HeaderID, r.ID))
	if r.ContentType != "" {
		hs = append(hs, header(HeaderContentType, r.ContentType))
	}
	if r.Seq >= 0 {
		hs = append(hs, countHeader(HeaderSeq, r.Seq))
	}
	if r.EOS >= 0 {
		hs = append(hs, countHeader(HeaderEOS, r.EOS))
	}
	if r.Status != CodeOK {
		hs = append(hs, header(HeaderStatus, string(r.Status)), header(HeaderError, r.Error))
	}
	if r.HTTP != nil {
		hs = r.HTTP.appendHeaders(hs)
	}
	return &kgo.Record{Topic: r.Topic, Value: r.Value, Headers: hs}
}

// ParseReply decodes a reply. It fails on a missing or empty sl-id (the
// reply answers nobody), a count that is not one, and sl-seq with sl-eos
// on one record. An unknown sl-status is kept (a newer peer's code); an
// empty one, or sl-error alone, is no failure.
func ParseReply(rec *kgo.Record) (Reply, error) {
	r := Reply{Topic: rec.Topic, Value: rec.Value, Seq: -1, EOS: -1}
	for _, h := range rec.Headers {
		var err error
		switch h.Key {
		case HeaderID:
			r.ID = string(h.Value)
		case HeaderContentType:
			r.ContentType = string(h.Value)
		case HeaderStatus:
			r.Status = Code(h.Value)
		case HeaderError:
			r.Error = string(h.Value)
		case HeaderSeq:
			r.Seq, err = parseCount(HeaderSeq, h.Value)
		case HeaderEOS:
			r.EOS, err = parseCount(HeaderEOS, h.Value)
		default:
			_, err = httpResponseField(&r.HTTP, h)
		}
		if err != nil {
			return r, err
		}
	}
	if r.Status == CodeOK {
		r.Error = ""
	}
	switch {
	case r.ID == "":
		return r, missingHeader(HeaderID, "a reply")
	case r.Seq >= 0 && r.EOS >= 0:
		return r, &ParseError{Header: HeaderEOS, Reason: "on the same record as " + HeaderSeq}
	}
	return r, nil
}
