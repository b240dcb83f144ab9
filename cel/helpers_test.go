package cel

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/gateway/oip"
)

// raw builds a tensor from little-endian values of the datatype's size.
func raw(name string, dt oip.Datatype, shape []int64, vs ...uint64) oip.Tensor {
	size := dt.Size()
	data := make([]byte, len(vs)*size)
	for i, v := range vs {
		for j := range size {
			data[i*size+j] = byte(v >> (8 * j))
		}
	}
	return oip.Tensor{Name: name, Datatype: dt, Shape: shape, Data: data}
}

// testTensors has one tensor of each datatype family, with edge values.
func testTensors() []oip.Tensor {
	return []oip.Tensor{
		oip.NewFP32("x", []int64{2, 2}, []float32{1, 2.5, -3, 0.5}),
		oip.NewFP64("f64", nil, []float64{0.25}),
		raw("f16", oip.FP16, []int64{3}, 0x3c00, 0xc000, 0x3555), // 1, -2, 0.333...
		oip.NewInt64("ids", nil, []int64{-7, 9007199254740993}),
		oip.NewInt32("i32", nil, []int32{-2147483648}),
		raw("i8", oip.Int8, []int64{2}, 0x80, 0x7f),
		raw("u8", oip.Uint8, []int64{2}, 0, 255),
		raw("u16", oip.Uint16, []int64{1}, 65535),
		raw("u32", oip.Uint32, []int64{1}, 4294967295),
		raw("u64", oip.Uint64, []int64{1}, 18446744073709551615),
		oip.NewBool("mask", nil, []bool{true, false}),
		oip.NewBytes("text", nil, [][]byte{[]byte("hello"), []byte("wörld"), {0xff, 0xfe}}),
		oip.NewFP32("scalar", []int64{}, []float32{42}),
	}
}

// requestJSON is an OIP request in the REST JSON form.
func requestJSON(t testing.TB, ts ...oip.Tensor) []byte {
	t.Helper()
	// JSON cannot carry BYTES that are not UTF-8.
	var keep []oip.Tensor
	for _, x := range ts {
		if x.Name != "text" {
			keep = append(keep, x)
		}
	}
	b, err := oip.EncodeRequestJSON(&oip.InferRequest{ID: "req-1", Inputs: keep})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requestPayload is an OIP request in the compact Kafka payload form.
func requestPayload(t testing.TB, ts ...oip.Tensor) []byte {
	t.Helper()
	b, err := (&oip.InferRequest{ID: "req-1", Inputs: ts}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] == '{' || binary.BigEndian.Uint32(b) > uint32(len(b)) {
		t.Fatalf("payload does not start with its header length: % x", b[:8])
	}
	return b
}

// responsePayload is an OIP response in the compact payload form.
func responsePayload(t testing.TB, ts ...oip.Tensor) []byte {
	t.Helper()
	b, err := (&oip.InferResponse{ModelName: "m", Outputs: ts}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// responseJSON is an OIP response in the REST JSON form.
func responseJSON(t testing.TB, ts ...oip.Tensor) []byte {
	t.Helper()
	b, _, err := oip.EncodeResponseJSON(&oip.InferResponse{ModelName: "m", Outputs: ts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// evalJSON compiles expr as a transform and returns its JSON value.
func evalJSON(t testing.TB, expr string, in *Input) (string, error) {
	t.Helper()
	p, err := Compile(expr, Transform)
	if err != nil {
		t.Fatalf("compile %q: %v", expr, err)
	}
	b, err := p.JSON(context.Background(), in)
	return string(b), err
}

// wantRuleError fails unless err is a rule error whose message contains
// part.
func wantRuleError(t testing.TB, err error, part string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", part)
	}
	if !errors.Is(err, ErrRule) {
		t.Fatalf("error %q does not wrap ErrRule", err)
	}
	if !strings.Contains(err.Error(), part) {
		t.Fatalf("error %q does not contain %q", err, part)
	}
}
