package serve

import (
	"encoding/json"
	"fmt"

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
