package cel

import (
	"context"
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// maxEncodeDepth bounds the nesting appendJSON follows.
const maxEncodeDepth = 10000

// errTooLarge reports a value whose JSON would pass MaxJSONSize.
var errTooLarge = ruleErrorf("result encodes to more than %d bytes of JSON", MaxJSONSize)

// checkEvery is how many values the encoder writes between checks of its
// context.
const checkEvery = 4096

// encoder writes CEL values as JSON. Its work is bounded by MaxJSONSize
// (every value writes at least one byte) and stopped by ctx.
type encoder struct {
	ctx   context.Context
	steps int
}

// appendJSON appends v encoded as JSON to dst. null, bool, int, uint,
// double, string, list and map encode as themselves (map keys that are
// int, uint or bool as their decimal or literal text; object keys in
// sorted order, so equal values encode equally); bytes as base64 (RFC 4648
// standard alphabet, padded); a duration as seconds with an "s" suffix
// ("1.5s"); a timestamp in RFC 3339 in UTC; an optional as its value, or
// null when it has none; the struct types as objects of their fields.
// NaN and infinities, types, and anything else cannot be encoded: the
// error says what.
func (e *encoder) appendJSON(dst []byte, v ref.Val, depth int) ([]byte, error) {
	if depth > maxEncodeDepth {
		return nil, ruleErrorf("result nests deeper than %d levels", maxEncodeDepth)
	}
	if len(dst) > MaxJSONSize {
		return nil, errTooLarge
	}
	if e.steps++; e.steps%checkEvery == 0 && e.ctx.Err() != nil {
		return nil, interrupted(e.ctx)
	}
	switch v := v.(type) {
	case types.Null:
		return append(dst, "null"...), nil
	case types.Bool:
		return strconv.AppendBool(dst, bool(v)), nil
	case types.Int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case types.Uint:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case types.Double:
		return appendDouble(dst, float64(v))
	case types.String:
		return appendString(dst, string(v)), nil
	case types.Bytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v)
		return append(dst, '"'), nil
	case types.Duration:
		s := strconv.FormatFloat(v.Duration.Seconds(), 'f', -1, 64)
		return appendString(dst, s+"s"), nil
	case types.Timestamp:
		return appendString(dst, v.Time.UTC().Format(time.RFC3339Nano)), nil
	case *types.Optional:
		if !v.HasValue() {
			return append(dst, "null"...), nil
		}
		return e.appendJSON(dst, v.GetValue(), depth+1)
	case object:
		return e.appendObject(dst, v, depth)
	case traits.Mapper:
		return e.appendMap(dst, v, depth)
	case traits.Lister:
		return e.appendList(dst, v, depth)
	}
	return nil, ruleErrorf("a value of type %s cannot be encoded as JSON", v.Type().TypeName())
}

// appendDouble writes f as encoding/json does: the shortest decimal that
// reads back as f, in exponent form only below 1e-6 or from 1e21.
func appendDouble(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, ruleErrorf("%v cannot be encoded as JSON", f)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		n := len(dst)
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		// 1e-07 → 1e-7: drop a leading zero of a two-digit exponent.
		if e := len(dst) - 4; e > n && dst[e] == 'e' && dst[e+1] == '-' && dst[e+2] == '0' {
			dst[e+2] = dst[e+3]
			dst = dst[:len(dst)-1]
		}
		return dst, nil
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64), nil
}

// appendString writes s as a JSON string, escaping what RFC 8259 requires
// and replacing invalid UTF-8 with U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func (e *encoder) appendList(dst []byte, l traits.Lister, depth int) ([]byte, error) {
	dst = append(dst, '[')
	var err error
	first := true
	for it := l.Iterator(); it.HasNext() == types.True; {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		v := it.Next()
		if err, isErr := v.(*types.Err); isErr {
			return nil, ruleErrorf("%s", err)
		}
		if dst, err = e.appendJSON(dst, v, depth+1); err != nil {
			return nil, err
		}
	}
	if len(dst) >= MaxJSONSize {
		return nil, errTooLarge
	}
	return append(dst, ']'), nil
}

// entry is one member of an object being encoded.
type entry struct {
	key string
	val ref.Val
}

func (e *encoder) appendMap(dst []byte, m traits.Mapper, depth int) ([]byte, error) {
	var small [8]entry
	entries := small[:0]
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		key, err := keyString(k)
		if err != nil {
			return nil, err
		}
		v, found := m.Find(k)
		if !found {
			return nil, ruleErrorf("map key %s has no value", key)
		}
		if err, isErr := v.(*types.Err); isErr {
			return nil, ruleErrorf("%s", err)
		}
		entries = append(entries, entry{key, v})
	}
	return e.appendEntries(dst, entries, depth)
}

func (e *encoder) appendObject(dst []byte, o object, depth int) ([]byte, error) {
	var small [8]entry
	entries := small[:0]
	for _, f := range o.desc().fields {
		entries = append(entries, entry{f.name, adapter.NativeToValue(f.get(o))})
	}
	return e.appendEntries(dst, entries, depth)
}

func (e *encoder) appendEntries(dst []byte, entries []entry, depth int) ([]byte, error) {
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	var err error
	for i, m := range entries {
		if i > 0 {
			if m.key == entries[i-1].key {
				// {1: x, "1": y}: two keys with one text.
				return nil, ruleErrorf("map has two keys that encode as %q", m.key)
			}
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.key)
		dst = append(dst, ':')
		if dst, err = e.appendJSON(dst, m.val, depth+1); err != nil {
			return nil, err
		}
	}
	if len(dst) >= MaxJSONSize {
		return nil, errTooLarge
	}
	return append(dst, '}'), nil
}

// keyString returns the text of a map key as a JSON object key.
func keyString(k ref.Val) (string, error) {
	switch k := k.(type) {
	case types.String:
		return string(k), nil
	case types.Int:
		return strconv.FormatInt(int64(k), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(k), 10), nil
	case types.Bool:
		return strconv.FormatBool(bool(k)), nil
	}
	return "", ruleErrorf("a map key of type %s cannot be encoded as JSON", k.Type().TypeName())
}
