package serve

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/streams"
)

// Content types of encoded values. Strings and byte slices travel raw so
// that a plain-text or binary payload needs no JSON quoting; every other
// type travels as JSON.
const (
	ContentJSON   = "application/json"
	ContentText   = "text/plain; charset=utf-8"
	ContentBinary = "application/octet-stream"
)

func encode[T any](v T) ([]byte, string, error) {
	switch x := any(v).(type) {
	case []byte:
		return x, ContentBinary, nil
	case string:
		return []byte(x), ContentText, nil
	case json.RawMessage:
		return x, ContentJSON, nil
	case *oip.InferResponse:
		return marshalOIP(x)
	case *oip.InferRequest:
		return marshalOIP(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", streams.Errorf(streams.CodeInternal, "encode %T: %v", v, err)
	}
	return b, ContentJSON, nil
}

func decode[T any](b []byte) (T, error) {
	var v T
	switch p := any(&v).(type) {
	case *[]byte:
		*p = b
		return v, nil
	case *string:
		*p = string(b)
		return v, nil
	case **oip.InferRequest:
		*p = new(oip.InferRequest)
		return v, unmarshalOIP(*p, b)
	case **oip.InferResponse:
		*p = new(oip.InferResponse)
		return v, unmarshalOIP(*p, b)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, streams.Errorf(streams.CodeInvalidArgument, "decode %T from %s: %v", v, describe(b), err)
	}
	return v, nil
}

// describe names a payload in an error without dumping it whole.
func describe(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// Inference requests and responses travel in the compact OIP payload: a
// JSON header and the raw tensors, never base64.
func marshalOIP(m encoding.BinaryMarshaler) ([]byte, string, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, "", streams.Errorf(streams.CodeInternal, "encode inference payload: %v", err)
	}
	return b, oip.ContentType, nil
}

func unmarshalOIP(u encoding.BinaryUnmarshaler, b []byte) error {
	if err := u.UnmarshalBinary(b); err != nil {
		return streams.Errorf(streams.CodeInvalidArgument, "decode inference payload: %v", err)
	}
	return nil
}

var (
	bytesType       = reflect.TypeFor[[]byte]()
	stringType      = reflect.TypeFor[string]()
	oipRequestType  = reflect.TypeFor[*oip.InferRequest]()
	oipResponseType = reflect.TypeFor[*oip.InferResponse]()
)

// encodingOf is how encode and decode carry a value of type t.
func encodingOf(t reflect.Type) string {
	switch t {
	case bytesType:
		return bundle.EncodingBinary
	case stringType:
		return bundle.EncodingText
	case oipRequestType, oipResponseType:
		return bundle.EncodingOIP
	}
	return bundle.EncodingJSON // json.RawMessage too: it is JSON, taken as is
}
