package oip

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// allDatatypes lists every datatype the protocol has.
var allDatatypes = []Datatype{Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, FP16, FP32, FP64, Bytes}

// rawTensor builds a tensor from little-endian values of the datatype's size.
func rawTensor(name string, dt Datatype, shape []int64, vs ...uint64) Tensor {
	size := dt.Size()
	data := make([]byte, len(vs)*size)
	for i, v := range vs {
		for j := range size {
			data[i*size+j] = byte(v >> (8 * j))
		}
	}
	return Tensor{Name: name, Datatype: dt, Shape: shape, Data: data}
}

// everyTensor returns tensors of every datatype, with edge values,
// multi-dimensional shapes, scalars, BYTES with empty strings and
// zero-element tensors of every datatype.
func everyTensor() []Tensor {
	nan32 := float32(math.NaN())
	ts := []Tensor{
		NewBool("bool", []int64{2, 2}, []bool{true, false, false, true}),
		rawTensor("uint8", Uint8, []int64{3}, 0, 1, 255),
		rawTensor("uint16", Uint16, []int64{1, 2}, 0, 65535),
		rawTensor("uint32", Uint32, []int64{2}, 7, math.MaxUint32),
		rawTensor("uint64", Uint64, []int64{2}, 0, math.MaxUint64),
		rawTensor("int8", Int8, []int64{3}, 0x80, 0x7f, 0xff),
		rawTensor("int16", Int16, []int64{2}, 0x8000, 0x7fff),
		NewInt32("int32", []int64{2, 2}, []int32{math.MinInt32, math.MaxInt32, -1, 0}),
		NewInt64("int64", []int64{3}, []int64{math.MinInt64, math.MaxInt64, -42}),
		// 1, -2, max, smallest subnormal, -0, +Inf, NaN
		rawTensor("fp16", FP16, []int64{7}, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x7e00),
		NewFP32("fp32", []int64{2, 1, 3}, []float32{1.5, float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(-1)), nan32}),
		NewFP64("fp64", []int64{2, 2}, []float64{math.Pi, -1e300, math.SmallestNonzeroFloat64, math.Inf(1)}),
		NewBytes("bytes", []int64{2, 2}, [][]byte{[]byte("hello"), {}, []byte("wörld ✓"), []byte("q\"b\\s\n\t\x01/")}),
		NewBytes("empty_strings", []int64{3}, [][]byte{{}, {}, {}}),
		NewFP32("scalar", []int64{}, []float32{42}),
	}
	for _, dt := range allDatatypes {
		ts = append(ts, Tensor{Name: "empty_" + strings.ToLower(string(dt)), Datatype: dt, Shape: []int64{0}})
	}
	ts = append(ts, Tensor{Name: "empty_2d", Datatype: FP64, Shape: []int64{3, 0}})
	return ts
}

// sampleRequest is a request with every kind of tensor and parameter.
func sampleRequest() *InferRequest {
	ts := everyTensor()
	ts[0].Parameters = map[string]any{"note": "first", "weight": 0.5}
	return &InferRequest{
		ID:         "req-1",
		Parameters: map[string]any{"s": "x y", "i": int64(-3), "f": 2.0, "b": true, "big": int64(math.MaxInt64)},
		Inputs:     ts,
		Outputs: []RequestedOutput{
			{Name: "out", Parameters: map[string]any{"binary_data": true}},
			{Name: "other"},
		},
	}
}

// sampleResponse is a response with every kind of tensor.
func sampleResponse() *InferResponse {
	ts := everyTensor()
	ts[1].Parameters = map[string]any{"classification": int64(2)}
	return &InferResponse{
		ModelName:    "model",
		ModelVersion: "3",
		ID:           "req-1",
		Parameters:   map[string]any{"sequence_end": false},
		Outputs:      ts,
	}
}

// normalTensors makes nil and empty the same, for comparisons.
func normalTensors(ts []Tensor) []Tensor {
	out := make([]Tensor, len(ts))
	for i, t := range ts {
		if t.Shape == nil {
			t.Shape = []int64{}
		}
		if t.Data == nil {
			t.Data = []byte{}
		}
		if len(t.Parameters) == 0 {
			t.Parameters = nil
		}
		out[i] = t
	}
	return out
}

func normalRequest(r *InferRequest) InferRequest {
	n := *r
	n.Inputs = normalTensors(r.Inputs)
	if len(n.Parameters) == 0 {
		n.Parameters = nil
	}
	n.Outputs = make([]RequestedOutput, len(r.Outputs))
	for i, o := range r.Outputs {
		if len(o.Parameters) == 0 {
			o.Parameters = nil
		}
		n.Outputs[i] = o
	}
	return n
}

func normalResponse(r *InferResponse) InferResponse {
	n := *r
	n.Outputs = normalTensors(r.Outputs)
	if len(n.Parameters) == 0 {
		n.Parameters = nil
	}
	return n
}

func equalRequests(a, b *InferRequest) bool {
	return reflect.DeepEqual(normalRequest(a), normalRequest(b))
}

func equalResponses(a, b *InferResponse) bool {
	return reflect.DeepEqual(normalResponse(a), normalResponse(b))
}

// wantRequest fails t unless got equals want.
func wantRequest(t *testing.T, got, want *InferRequest) {
	t.Helper()
	if !equalRequests(got, want) {
		t.Fatalf("request differs\n got: %+v\nwant: %+v", normalRequest(got), normalRequest(want))
	}
}

// wantResponse fails t unless got equals want.
func wantResponse(t *testing.T, got, want *InferResponse) {
	t.Helper()
	if !equalResponses(got, want) {
		t.Fatalf("response differs\n got: %+v\nwant: %+v", normalResponse(got), normalResponse(want))
	}
}

// wantInvalid fails t unless err wraps ErrInvalid and holds fragment.
func wantInvalid(t *testing.T, err error, fragment string) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("no error, want one with %q", fragment)
	case !errors.Is(err, ErrInvalid):
		t.Fatalf("error %q does not wrap ErrInvalid", err)
	case !strings.Contains(err.Error(), fragment):
		t.Fatalf("error %q does not contain %q", err, fragment)
	}
}

// binaryBody builds a binary-extension body: JSON, then raw parts.
func binaryBody(js string, parts ...[]byte) ([]byte, int) {
	body := []byte(js)
	for _, p := range parts {
		body = append(body, p...)
	}
	return body, len(js)
}

func le32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func f32s(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}
