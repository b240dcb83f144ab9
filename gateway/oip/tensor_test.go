package oip

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

func TestDatatypeSize(t *testing.T) {
	t.Parallel()
	want := map[Datatype]int{
		Bool: 1, Uint8: 1, Int8: 1, Uint16: 2, Int16: 2, FP16: 2,
		Uint32: 4, Int32: 4, FP32: 4, Uint64: 8, Int64: 8, FP64: 8,
		Bytes: 0, "BF16": -1, "fp32": -1, "": -1,
	}
	for dt, size := range want {
		if got := dt.Size(); got != size {
			t.Errorf("%q.Size() = %d, want %d", dt, got, size)
		}
	}
}

func TestParseDatatype(t *testing.T) {
	t.Parallel()
	for _, dt := range allDatatypes {
		got, err := ParseDatatype(string(dt))
		if err != nil || got != dt {
			t.Errorf("ParseDatatype(%q) = %q, %v", dt, got, err)
		}
	}
	for _, s := range []string{"", "fp32", "FLOAT", "BF16", "STRING"} {
		_, err := ParseDatatype(s)
		wantInvalid(t, err, "unknown datatype")
	}
}

func TestElements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		shape []int64
		want  int64
		err   string
	}{
		{shape: nil, want: 1},
		{shape: []int64{}, want: 1},
		{shape: []int64{0}, want: 0},
		{shape: []int64{2, 3, 4}, want: 24},
		{shape: []int64{1 << 40, 0, 1 << 40}, want: 0},
		{shape: []int64{math.MaxInt64}, want: math.MaxInt64},
		{shape: []int64{2, -1}, err: "tensor x: negative dimension -1 in shape [2 -1]"},
		{shape: []int64{0, -3}, err: "negative dimension -3"},
		{shape: []int64{1 << 32, 1 << 32}, err: "tensor x: shape [4294967296 4294967296] holds more than 9223372036854775807 elements"},
		{shape: []int64{math.MaxInt64, 2}, err: "holds more than"},
	}
	for _, tt := range tests {
		tensor := Tensor{Name: "x", Shape: tt.shape}
		n, err := tensor.Elements()
		if tt.err != "" {
			wantInvalid(t, err, tt.err)
			continue
		}
		if err != nil || n != tt.want {
			t.Errorf("Elements(%v) = %d, %v; want %d", tt.shape, n, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tensor := range everyTensor() {
		if err := tensor.Validate(); err != nil {
			t.Errorf("%s: %v", tensor.Name, err)
		}
	}
	tests := []struct {
		name   string
		tensor Tensor
		err    string
	}{
		{"unknown datatype", Tensor{Name: "x", Datatype: "FP8", Shape: []int64{1}, Data: []byte{0}}, `tensor x: unknown datatype "FP8"`},
		{"negative dimension", Tensor{Name: "x", Datatype: FP32, Shape: []int64{-1}}, "tensor x: negative dimension -1 in shape [-1]"},
		{"short data", Tensor{Name: "x", Datatype: FP32, Shape: []int64{2, 3}, Data: make([]byte, 20)}, "tensor x: shape [2 3] holds 6 FP32 elements (24 bytes), data has 20 bytes"},
		{"long data", Tensor{Name: "x", Datatype: Int8, Shape: []int64{2}, Data: make([]byte, 3)}, "holds 2 INT8 elements (2 bytes), data has 3 bytes"},
		{"huge shape", Tensor{Name: "x", Datatype: FP64, Shape: []int64{1 << 62}}, "holds 4611686018427387904 FP64 elements, data has 0 bytes"},
		{"bool not 0 or 1", Tensor{Name: "x", Datatype: Bool, Shape: []int64{2}, Data: []byte{1, 2}}, "tensor x: BOOL element 1 is 2, want 0 or 1"},
		{"bytes trailing", Tensor{Name: "x", Datatype: Bytes, Shape: []int64{1}, Data: append(le32(1), 'a', 'b', 'c')}, "tensor x: BYTES data has 2 trailing bytes after its 1 elements"},
		{"bytes zero elements trailing", Tensor{Name: "x", Datatype: Bytes, Shape: []int64{0}, Data: le32(0)}, "BYTES data has 4 trailing bytes after its 0 elements"},
		{"bytes short length", Tensor{Name: "x", Datatype: Bytes, Shape: []int64{2}, Data: append(le32(0), 1, 0)}, "BYTES data ends at element 1 of 2: 2 bytes left, want a 4-byte length"},
		{"bytes long element", Tensor{Name: "x", Datatype: Bytes, Shape: []int64{1}, Data: append(le32(9), "abc"...)}, "BYTES element 0 of 1 has length 9 beyond the 3 bytes left"},
		{"bytes huge length", Tensor{Name: "x", Datatype: Bytes, Shape: []int64{1}, Data: le32(math.MaxUint32)}, "has length 4294967295 beyond the 0 bytes left"},
		{"bytes huge shape", Tensor{Name: "x", Datatype: Bytes, Shape: []int64{1 << 60}, Data: le32(0)}, "BYTES data ends at element 1 of 1152921504606846976"},
		{"bad parameter", Tensor{Name: "x", Datatype: FP32, Shape: []int64{0}, Parameters: map[string]any{"p": []int{1}}}, "tensor x: parameter p: []int value [1] is not a bool, integer, finite number or string"},
		{"nan parameter", Tensor{Name: "x", Datatype: FP32, Shape: []int64{0}, Parameters: map[string]any{"p": math.NaN()}}, "parameter p: float64 value NaN"},
		{"huge uint parameter", Tensor{Name: "x", Datatype: FP32, Shape: []int64{0}, Parameters: map[string]any{"p": uint64(math.MaxUint64)}}, "parameter p: uint64 value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantInvalid(t, tt.tensor.Validate(), tt.err)
		})
	}
}

func TestAccessors(t *testing.T) {
	t.Parallel()
	f32 := []float32{1.5, -2, float32(math.Inf(1))}
	f64 := []float64{math.Pi, -0.25}
	i64 := []int64{math.MinInt64, 0, math.MaxInt64}
	i32 := []int32{math.MinInt32, 7}
	bs := []bool{true, false, true}
	strs := [][]byte{[]byte("a"), {}, []byte("ccc")}

	fp32 := NewFP32("a", []int64{3, 1}, f32)
	if got, err := fp32.Float32s(); err != nil || !reflect.DeepEqual(got, f32) {
		t.Errorf("Float32s = %v, %v", got, err)
	}
	fp64 := NewFP64("b", nil, f64)
	if got, err := fp64.Float64s(); err != nil || !reflect.DeepEqual(got, f64) || !reflect.DeepEqual(fp64.Shape, []int64{2}) {
		t.Errorf("Float64s = %v, %v (shape %v)", got, err, fp64.Shape)
	}
	int64s := NewInt64("c", nil, i64)
	if got, err := int64s.Int64s(); err != nil || !reflect.DeepEqual(got, i64) {
		t.Errorf("Int64s = %v, %v", got, err)
	}
	int32s := NewInt32("d", nil, i32)
	if got, err := int32s.Int32s(); err != nil || !reflect.DeepEqual(got, i32) {
		t.Errorf("Int32s = %v, %v", got, err)
	}
	bools := NewBool("e", nil, bs)
	if got, err := bools.Bools(); err != nil || !reflect.DeepEqual(got, bs) {
		t.Errorf("Bools = %v, %v", got, err)
	}
	byteStrs := NewBytes("f", []int64{1, 3}, strs)
	got, err := byteStrs.ByteStrings()
	if err != nil || len(got) != 3 || !bytes.Equal(got[0], strs[0]) || len(got[1]) != 0 || !bytes.Equal(got[2], strs[2]) {
		t.Errorf("ByteStrings = %q, %v", got, err)
	}
	if !bytes.Equal(byteStrs.Data, []byte("\x01\x00\x00\x00a\x00\x00\x00\x00\x03\x00\x00\x00ccc")) {
		t.Errorf("NewBytes data = %q", byteStrs.Data)
	}
	empty := NewBytes("g", []int64{0}, nil)
	if got, err := empty.ByteStrings(); err != nil || len(got) != 0 {
		t.Errorf("empty ByteStrings = %q, %v", got, err)
	}

	// The shape is copied, not shared.
	shape := []int64{3}
	tensor := NewFP32("h", shape, f32)
	shape[0] = 9
	if tensor.Shape[0] != 3 {
		t.Error("NewFP32 kept the caller's shape slice")
	}

	// Accessors check the datatype and the data.
	_, err = fp32.Float64s()
	wantInvalid(t, err, "tensor a: datatype is FP32, not FP64")
	_, err = fp64.Int64s()
	wantInvalid(t, err, "datatype is FP64, not INT64")
	_, err = int64s.Int32s()
	wantInvalid(t, err, "datatype is INT64, not INT32")
	_, err = int32s.Bools()
	wantInvalid(t, err, "datatype is INT32, not BOOL")
	_, err = bools.ByteStrings()
	wantInvalid(t, err, "datatype is BOOL, not BYTES")
	_, err = byteStrs.Float32s()
	wantInvalid(t, err, "datatype is BYTES, not FP32")
	short := NewFP32("s", []int64{4}, f32)
	_, err = short.Float32s()
	wantInvalid(t, err, "tensor s: shape [4] holds 4 FP32 elements (16 bytes), data has 12 bytes")
}

func TestHalf(t *testing.T) {
	t.Parallel()
	// Every binary16 value survives float64 and back.
	for h := range 1 << 16 {
		f := HalfToFloat64(uint16(h))
		got, ok := halfFromFloat64(f)
		switch {
		case math.IsNaN(f):
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("%#04x: NaN became %#04x", h, got)
			}
		case !ok || got != uint16(h):
			t.Fatalf("%#04x -> %v -> %#04x, %v", h, f, got, ok)
		}
	}
	// Every binary16 value is written as JSON that reads back as itself.
	for h := range 1 << 16 {
		js := appendHalf(nil, uint16(h))
		if math.IsNaN(HalfToFloat64(uint16(h))) {
			if string(js) != "NaN" {
				t.Fatalf("%#04x: NaN written as %s", h, js)
			}
			continue
		}
		d := dataDecoder{s: scanner{buf: []byte("[" + string(js) + "]")}, dt: FP16}
		if err := d.array(0); err != nil || len(d.out) != 2 || uint16(d.out[0])|uint16(d.out[1])<<8 != uint16(h) {
			t.Fatalf("%#04x written as %s reads back as %x, %v", h, js, d.out, err)
		}
		if len(js) > 11 {
			t.Fatalf("%#04x written as %s: longer than needed", h, js)
		}
	}
	if js := appendHalf(nil, 0x2e66); string(js) != "0.1" {
		t.Errorf("0x2e66 written as %s, want 0.1", js)
	}

	tests := []struct {
		f    float64
		want uint16
		ok   bool
	}{
		{1, 0x3c00, true},
		{65504, 0x7bff, true},
		{65519, 0x7bff, true},        // rounds down to the largest finite
		{65520, 0x7c00, false},       // rounds up out of range
		{1e10, 0x7c00, false},        // far out of range
		{-1e10, 0xfc00, false},       // and negative
		{math.Inf(-1), 0xfc00, true}, // infinities are fine
		{1 + 1.0/2048, 0x3c00, true}, // a tie rounds to even (down)
		{1 + 3.0/2048, 0x3c02, true}, // a tie rounds to even (up)
		{math.Ldexp(1, -24), 0x0001, true},
		{math.Ldexp(1, -25), 0x0000, true},   // a tie with zero rounds to even
		{math.Ldexp(1.5, -25), 0x0001, true}, // above the tie rounds up
		{math.Ldexp(1023, -24), 0x03ff, true},
		{math.Ldexp(2047, -25), 0x0400, true}, // subnormal rounding up to the smallest normal
		{1e-300, 0, true},
		{math.Copysign(0, -1), 0x8000, true},
	}
	for _, tt := range tests {
		got, ok := halfFromFloat64(tt.f)
		if got != tt.want || ok != tt.ok {
			t.Errorf("halfFromFloat64(%v) = %#04x, %v; want %#04x, %v", tt.f, got, ok, tt.want, tt.ok)
		}
	}
}
