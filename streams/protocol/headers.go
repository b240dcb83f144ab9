package protocol

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys. docs/PROTOCOL.md says which record kind carries which.
const (
	HeaderID          = "sl-id"       // request id; replies carry the id they answer
	HeaderReplyTo     = "sl-reply"    // topic the terminal result goes to; absent offline
	HeaderDeadline    = "sl-deadline" // absolute deadline, Unix nanoseconds, decimal
	HeaderTrace       = "traceparent" // W3C trace context: passed on, with the sender's span when it traces
	HeaderTraceState  = "tracestate"  // W3C vendor trace state: travels beside traceparent
	HeaderContentType = "content-type"
	HeaderModel       = "sl-model"   // model id for multiplexed deployments
	HeaderVersion     = "sl-version" // model version the caller asked for
	HeaderMethod      = "sl-method"  // the method of a class deployment a request calls; absent: __call__
	HeaderCont        = "sl-cont"    // continuation hops: "topic/id,topic/id"
	HeaderStatus      = "sl-status"  // error reply or dead letter: an error code (see Code)
	HeaderError       = "sl-error"   // error reply or dead letter: the error message
	HeaderSeq         = "sl-seq"     // stream item number, from 0
	HeaderEOS         = "sl-eos"     // end of stream: the number of items sent
	HeaderSource      = "sl-source"  // dead letter: "topic/partition/offset" of the failed record
	HeaderDeployment  = "sl-deployment"
	HeaderClaim       = "sl-claim"    // claim check: "<size> <sha256> <key>" of a value kept in the blob store
	HeaderReplayed    = "sl-replayed" // replay marker on a dead-letter topic: "partition/offset" of the dead letter replayed
	HeaderMirror      = "sl-mirror"   // "1": a mirrored copy, whose answers reach nobody
	// HeaderRequestPrefix starts the headers that carry the caller's
	// request headers (x-* names, lower case) along the graph, for rules.
	HeaderRequestPrefix = "h-"
)

// ErrMalformed is wrapped by every parse error of the package.
var ErrMalformed = errors.New("malformed record")

// ParseError is a header a parser could not read: missing where the
// record kind needs it, or with a value it cannot take.
type ParseError struct {
	Header string // the header's key
	Reason string // what is wrong, with the value quoted where there is one
}

func (e *ParseError) Error() string {
	return ErrMalformed.Error() + ": header " + e.Header + ": " + e.Reason
}

// Unwrap makes every ParseError match ErrMalformed.
func (e *ParseError) Unwrap() error { return ErrMalformed }

func badHeader(key string, value []byte, want string) *ParseError {
	return &ParseError{Header: key, Reason: fmt.Sprintf("%q is not %s", value, want)}
}

func missingHeader(key, kind string) *ParseError {
	return &ParseError{Header: key, Reason: "missing on " + kind}
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

// header builds one header.
func header(key, value string) kgo.RecordHeader {
	return kgo.RecordHeader{Key: key, Value: []byte(value)}
}

// countHeader builds a header whose value is a count (sl-seq, sl-eos).
func countHeader(key string, n int64) kgo.RecordHeader {
	return kgo.RecordHeader{Key: key, Value: strconv.AppendInt(nil, n, 10)}
}

// parseCount reads a non-negative decimal count: digits only, no sign,
// no spaces, within int64.
func parseCount(key string, v []byte) (int64, error) {
	if len(v) == 0 || v[0] < '0' || v[0] > '9' {
		return 0, badHeader(key, v, "a count (decimal digits)")
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, badHeader(key, v, "a count (decimal digits)")
	}
	return n, nil
}
