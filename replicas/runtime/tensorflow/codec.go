package tensorflow

import (
	"encoding/binary"
	"fmt"
)

// elemSize is the byte size of one element of each fixed-size OIP datatype
// this runtime accepts; BYTES is variable-sized and absent.
var elemSize = map[string]int{
	"BOOL":   1,
	"UINT8":  1,
	"UINT16": 2,
	"UINT32": 4,
	"UINT64": 8,
	"INT8":   1,
	"INT16":  2,
	"INT32":  4,
	"INT64":  8,
	"FP32":   4,
	"FP64":   8,
}

// numElements is the product of shape's dimensions (1 for a scalar); it
// fails on a negative dimension or an overflowing product.
func numElements(shape []int64) (int, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > (1<<62)/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return int(n), nil
}

// decodeBytes splits OIP BYTES contents (each element a 4-byte little-endian
// length followed by that many bytes) into exactly n strings.
func decodeBytes(data []byte, n int) ([]string, error) {
	out := make([]string, 0, n)
	for off := 0; off < len(data); {
		if len(out) == n {
			return nil, fmt.Errorf("BYTES contents hold more than the %d elements of the shape", n)
		}
		if len(data)-off < 4 {
			return nil, fmt.Errorf("BYTES element %d: truncated length prefix", len(out))
		}
		l := int(binary.LittleEndian.Uint32(data[off:]))
		off += 4
		if l > len(data)-off {
			return nil, fmt.Errorf("BYTES element %d: length %d overruns the contents", len(out), l)
		}
		out = append(out, string(data[off:off+l]))
		off += l
	}
	if len(out) != n {
		return nil, fmt.Errorf("BYTES contents hold %d elements, shape needs %d", len(out), n)
	}
	return out, nil
}

// encodeBytes is the inverse of decodeBytes.
func encodeBytes(elems []string) []byte {
	size := 0
	for _, s := range elems {
		size += 4 + len(s)
	}
	out := make([]byte, 0, size)
	for _, s := range elems {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(s)))
		out = append(out, s...)
	}
	return out
}

// shapeMatches reports whether a concrete shape fits a signature shape, in
// which -1 is any size and a nil signature shape (unknown rank) fits all.
func shapeMatches(want, got []int64) bool {
	if want == nil {
		return true
	}
	if len(want) != len(got) {
		return false
	}
	for i, d := range want {
		if d >= 0 && d != got[i] {
			return false
		}
	}
	return true
}
