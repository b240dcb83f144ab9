package cel

import (
	"encoding/binary"
	"math"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/sluice-serve/sluice/gateway/oip"
)

// noTensors is the inputs (or outputs) of a payload that is not an OIP
// request (response). It is never written.
var noTensors = map[string]any{}

// requestTensors decodes payload as an OIP inference request, in the REST
// JSON form or the compact payload form, and returns its inputs by name;
// noTensors if it is neither.
//
// The forms cannot be confused: a JSON request starts with '{' (after
// white space), and a compact payload starts with a 4-byte big-endian
// header length, which would have to be over 2 GB for its first byte to
// be '{' or white space.
func requestTensors(payload []byte) map[string]any {
	var req *oip.InferRequest
	if isJSONObject(payload) {
		r, err := oip.DecodeRequestJSON(payload)
		if err != nil {
			return noTensors
		}
		req = r
	} else {
		req = new(oip.InferRequest)
		if err := req.UnmarshalBinary(payload); err != nil {
			return noTensors
		}
	}
	return tensorMap(req.Inputs)
}

// responseTensors is requestTensors for an OIP inference response: its
// outputs by name.
func responseTensors(payload []byte) map[string]any {
	var resp *oip.InferResponse
	if isJSONObject(payload) {
		r, err := oip.DecodeResponseJSON(payload)
		if err != nil {
			return noTensors
		}
		resp = r
	} else {
		resp = new(oip.InferResponse)
		if err := resp.UnmarshalBinary(payload); err != nil {
			return noTensors
		}
	}
	return tensorMap(resp.Outputs)
}

// isJSONObject reports whether b starts, after JSON white space, with '{'.
func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

func tensorMap(ts []oip.Tensor) map[string]any {
	if len(ts) == 0 {
		return noTensors
	}
	m := make(map[string]any, len(ts))
	for i := range ts {
		m[ts[i].Name] = &tensorObj{t: &ts[i]}
	}
	return m
}

// tensorValues returns the elements of t, which its decoder validated, as
// a flat CEL list: int for the signed and the 8 to 32-bit unsigned
// datatypes, uint for UINT64, double for the floating-point ones, bool for
// BOOL, and for BYTES a string per element, or bytes where the element is
// not valid UTF-8.
func tensorValues(t *oip.Tensor) ref.Val {
	d := t.Data
	switch t.Datatype {
	case oip.Bool:
		out := make([]bool, len(d))
		for i, b := range d {
			out[i] = b != 0
		}
		return types.NewList(adapter, out)
	case oip.Int8:
		return intList(len(d), func(i int) int64 { return int64(int8(d[i])) })
	case oip.Uint8:
		return intList(len(d), func(i int) int64 { return int64(d[i]) })
	case oip.Int16:
		return intList(len(d)/2, func(i int) int64 { return int64(int16(binary.LittleEndian.Uint16(d[2*i:]))) })
	case oip.Uint16:
		return intList(len(d)/2, func(i int) int64 { return int64(binary.LittleEndian.Uint16(d[2*i:])) })
	case oip.Int32:
		return intList(len(d)/4, func(i int) int64 { return int64(int32(binary.LittleEndian.Uint32(d[4*i:]))) })
	case oip.Uint32:
		return intList(len(d)/4, func(i int) int64 { return int64(binary.LittleEndian.Uint32(d[4*i:])) })
	case oip.Int64:
		return intList(len(d)/8, func(i int) int64 { return int64(binary.LittleEndian.Uint64(d[8*i:])) })
	case oip.Uint64:
		out := make([]uint64, len(d)/8)
		for i := range out {
			out[i] = binary.LittleEndian.Uint64(d[8*i:])
		}
		return types.NewList(adapter, out)
	case oip.FP16:
		return doubleList(len(d)/2, func(i int) float64 { return oip.HalfToFloat64(binary.LittleEndian.Uint16(d[2*i:])) })
	case oip.FP32:
		return doubleList(len(d)/4, func(i int) float64 {
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:])))
		})
	case oip.FP64:
		return doubleList(len(d)/8, func(i int) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])) })
	case oip.Bytes:
		var out []ref.Val
		for off := 0; off+4 <= len(d); {
			n := int(binary.LittleEndian.Uint32(d[off:]))
			off += 4
			if n > len(d)-off {
				break
			}
			e := d[off : off+n]
			off += n
			if utf8.Valid(e) {
				out = append(out, types.String(e))
			} else {
				out = append(out, types.Bytes(append([]byte(nil), e...)))
			}
		}
		return types.NewRefValList(adapter, out)
	}
	return types.NewErr("tensor %s has unknown datatype %s", t.Name, t.Datatype)
}

func intList(n int, at func(int) int64) ref.Val {
	out := make([]int64, n)
	for i := range out {
		out[i] = at(i)
	}
	return types.NewList(adapter, out)
}

func doubleList(n int, at func(int) float64) ref.Val {
	out := make([]float64, n)
	for i := range out {
		out[i] = at(i)
	}
	return types.NewList(adapter, out)
}
