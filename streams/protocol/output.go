package protocol

import "github.com/twmb/franz-go/pkg/kgo"

// Output is a record to the application's output topic: the result of a
// request nobody waits for (no sl-reply), keyed like the request, so
// that ordering by key survives the graph.
type Output struct {
	Topic       string // the application's output topic
	Key         []byte // the request's key
	ID          string // the request's id, if it had one
	ContentType string
	Value       []byte
	Seq         int64 // stream item number; -1: not an item
	EOS         int64 // end of stream: the number of items sent; -1: not the end
	// HTTP is an HTTP ingress's response status and headers, as on a
	// reply; nil otherwise.
	HTTP *HTTPResponse
}

// UnaryOutput is the result of in, to topic.
func UnaryOutput(in *Request, topic string, value []byte, contentType string) Output {
	return Output{Topic: topic, Key: in.Key, ID: in.Env.ID, ContentType: contentType, Value: value, Seq: -1, EOS: -1}
}

// ItemOutput is item seq (from 0) of the stream in causes, to topic.
func ItemOutput(in *Request, topic string, seq int64, value []byte, contentType string) Output {
	return Output{Topic: topic, Key: in.Key, ID: in.Env.ID, ContentType: contentType, Value: value, Seq: seq, EOS: -1}
}

// EndOutput ends the stream in causes after n items, on topic.
func EndOutput(in *Request, topic string, n int64) Output {
	return Output{Topic: topic, Key: in.Key, ID: in.Env.ID, Seq: -1, EOS: n}
}

// Record encodes the output: sl-id and content-type when set, sl-seq and
// sl-eos when not negative.
func (o *Output) Record() *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, 3)
	if o.ID != "" {
		hs = append(hs, header(HeaderID, o.ID))
	}
	if o.ContentType != "" {
		hs = append(hs, header(HeaderContentType, o.ContentType))
	}
	if o.Seq >= 0 {
		hs = append(hs, countHeader(HeaderSeq, o.Seq))
	}
	if o.EOS >= 0 {
		hs = append(hs, countHeader(HeaderEOS, o.EOS))
	}
	if o.HTTP != nil {
		hs = o.HTTP.appendHeaders(hs)
	}
	return &kgo.Record{Topic: o.Topic, Key: o.Key, Value: o.Value, Headers: hs}
}

// ParseOutput decodes an output record. It fails on a count that is not
// one and on sl-seq with sl-eos on one record.
func ParseOutput(rec *kgo.Record) (Output, error) {
	o := Output{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Seq: -1, EOS: -1}
	for _, h := range rec.Headers {
		var err error
		switch h.Key {
		case HeaderID:
			o.ID = string(h.Value)
		case HeaderContentType:
			o.ContentType = string(h.Value)
		case HeaderSeq:
			o.Seq, err = parseCount(HeaderSeq, h.Value)
		case HeaderEOS:
			o.EOS, err = parseCount(HeaderEOS, h.Value)
		default:
			_, err = httpResponseField(&o.HTTP, h)
		}
		if err != nil {
			return o, err
		}
	}
	if o.Seq >= 0 && o.EOS >= 0 {
		return o, &ParseError{Header: HeaderEOS, Reason: "on the same record as " + HeaderSeq}
	}
	return o, nil
}
