package oip

import (
	"math"
	"slices"
)

// Parameters the protocol gives a meaning to.
const (
	// ParamBinaryDataSize, on a tensor in a binary-extension body, is the
	// size of its raw data in the binary part.
	ParamBinaryDataSize = "binary_data_size"
	// ParamBinaryData, on a requested output, asks for it as binary (true)
	// or as JSON (false).
	ParamBinaryData = "binary_data"
	// ParamBinaryDataOutput, on a request, asks for every output as binary
	// unless the output says otherwise.
	ParamBinaryDataOutput = "binary_data_output"
)

// paramValue returns v as one of the parameter types the protocol carries
// (bool, int64, float64 or string), converting Go's other integer and float
// types; ok is false for anything else, for unsigned values beyond int64,
// and for non-finite floats (JSON cannot carry them).
func paramValue(v any) (value any, ok bool) {
	switch x := v.(type) {
	case bool, int64, string:
		return x, true
	case float64:
		return x, !math.IsInf(x, 0) && !math.IsNaN(x)
	case float32:
		return paramValue(float64(x))
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint:
		return paramValue(uint64(x))
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= math.MaxInt64
	}
	return nil, false
}

// validateParams checks that every value in p is one paramValue takes.
func validateParams(p map[string]any) error {
	for _, v := range p {
		if _, ok := paramValue(v); !ok {
			return firstBadParam(p)
		}
	}
	return nil
}

// firstBadParam reports the first parameter, in key order, that
// paramValue refuses.
func firstBadParam(p map[string]any) error {
	for _, k := range sortedKeys(p) {
		if _, ok := paramValue(p[k]); !ok {
			return errorf("parameter %s: %T value %v is not a bool, integer, finite number or string", k, p[k], p[k])
		}
	}
	return nil
}

// wantBoolParam checks that p[key], when present, is a bool.
func wantBoolParam(p map[string]any, key string) error {
	if v, ok := p[key]; ok {
		if _, isBool := v.(bool); !isBool {
			return errorf("parameter %s: want true or false, got %v", key, v)
		}
	}
	return nil
}

// sortedKeys returns p's keys in order, so that output and errors are
// deterministic.
func sortedKeys[V any](p map[string]V) []string {
	if len(p) == 0 {
		return nil
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
