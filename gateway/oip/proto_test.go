package oip

import (
	"math"
	"testing"

	"github.com/sluice-serve/sluice/protos/gen/inference"
)

func TestProtoRoundTrip(t *testing.T) {
	t.Parallel()
	want := sampleRequest()
	m := RequestToProto(want)
	if len(m.RawInputContents) != len(want.Inputs) {
		t.Fatalf("%d raw contents for %d inputs", len(m.RawInputContents), len(want.Inputs))
	}
	got, err := RequestFromProto(m)
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, got, want)

	resp := sampleResponse()
	pm := ResponseToProto(resp)
	if len(pm.RawOutputContents) != len(resp.Outputs) {
		t.Fatalf("%d raw contents for %d outputs", len(pm.RawOutputContents), len(resp.Outputs))
	}
	for i, o := range pm.Outputs {
		if o.Contents != nil {
			t.Errorf("output %s has typed contents", o.Name)
		}
		if pm.RawOutputContents[i] == nil {
			t.Errorf("output %s has a nil raw entry", o.Name)
		}
	}
	if pm.ModelName != "model" || pm.ModelVersion != "3" || pm.Id != "req-1" {
		t.Errorf("metadata %q %q %q", pm.ModelName, pm.ModelVersion, pm.Id)
	}
	gotResp, err := ResponseFromProto(pm)
	if err != nil {
		t.Fatal(err)
	}
	wantResponse(t, gotResp, resp)
}

func TestProtoParameters(t *testing.T) {
	t.Parallel()
	m := &inference.ModelInferRequest{
		Parameters: map[string]*inference.InferParameter{
			"b": {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}},
			"i": {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: -4}},
			"s": {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "x"}},
			"d": {ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: 0.25}},
			"u": {ParameterChoice: &inference.InferParameter_Uint64Param{Uint64Param: 9}},
		},
	}
	got, err := RequestFromProto(m)
	if err != nil {
		t.Fatal(err)
	}
	want := &InferRequest{Parameters: map[string]any{"b": true, "i": int64(-4), "s": "x", "d": 0.25, "u": int64(9)}}
	wantRequest(t, got, want)
	back := RequestToProto(got)
	if back.Parameters["u"].GetInt64Param() != 9 || back.Parameters["d"].GetDoubleParam() != 0.25 || !back.Parameters["b"].GetBoolParam() || back.Parameters["s"].GetStringParam() != "x" {
		t.Errorf("parameters back: %v", back.Parameters)
	}
}

// typed wraps typed contents in a one-input request.
func typed(dt Datatype, shape []int64, c *inference.InferTensorContents) *inference.ModelInferRequest {
	return &inference.ModelInferRequest{Inputs: []*inference.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: string(dt), Shape: shape, Contents: c},
	}}
}

func TestRequestFromProtoContents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    *inference.ModelInferRequest
		want Tensor
	}{
		{"BOOL", typed(Bool, []int64{2}, &inference.InferTensorContents{BoolContents: []bool{true, false}}), NewBool("x", nil, []bool{true, false})},
		{"INT8", typed(Int8, []int64{2}, &inference.InferTensorContents{IntContents: []int32{-128, 127}}), rawTensor("x", Int8, []int64{2}, 0x80, 0x7f)},
		{"INT16", typed(Int16, []int64{2}, &inference.InferTensorContents{IntContents: []int32{-32768, 1}}), rawTensor("x", Int16, []int64{2}, 0x8000, 1)},
		{"INT32", typed(Int32, []int64{1, 2}, &inference.InferTensorContents{IntContents: []int32{math.MinInt32, 5}}), NewInt32("x", []int64{1, 2}, []int32{math.MinInt32, 5})},
		{"INT64", typed(Int64, []int64{1}, &inference.InferTensorContents{Int64Contents: []int64{math.MinInt64}}), NewInt64("x", nil, []int64{math.MinInt64})},
		{"UINT8", typed(Uint8, []int64{2}, &inference.InferTensorContents{UintContents: []uint32{0, 255}}), rawTensor("x", Uint8, []int64{2}, 0, 255)},
		{"UINT16", typed(Uint16, []int64{1}, &inference.InferTensorContents{UintContents: []uint32{65535}}), rawTensor("x", Uint16, []int64{1}, 65535)},
		{"UINT32", typed(Uint32, []int64{1}, &inference.InferTensorContents{UintContents: []uint32{math.MaxUint32}}), rawTensor("x", Uint32, []int64{1}, math.MaxUint32)},
		{"UINT64", typed(Uint64, []int64{1}, &inference.InferTensorContents{Uint64Contents: []uint64{math.MaxUint64}}), rawTensor("x", Uint64, []int64{1}, math.MaxUint64)},
		{"FP32", typed(FP32, []int64{2, 1}, &inference.InferTensorContents{Fp32Contents: []float32{1.5, -2}}), NewFP32("x", []int64{2, 1}, []float32{1.5, -2})},
		{"FP64", typed(FP64, []int64{1}, &inference.InferTensorContents{Fp64Contents: []float64{math.Pi}}), NewFP64("x", nil, []float64{math.Pi})},
		{"BYTES", typed(Bytes, []int64{3}, &inference.InferTensorContents{BytesContents: [][]byte{[]byte("ab"), {}, nil}}), NewBytes("x", nil, [][]byte{[]byte("ab"), {}, {}})},
		{"zero elements without contents", typed(FP32, []int64{0}, nil), Tensor{Name: "x", Datatype: FP32, Shape: []int64{0}}},
		{"FP16 with zero elements", typed(FP16, []int64{0}, nil), Tensor{Name: "x", Datatype: FP16, Shape: []int64{0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RequestFromProto(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			wantRequest(t, got, &InferRequest{Inputs: []Tensor{tt.want}})
		})
	}
}

func TestProtoErrors(t *testing.T) {
	t.Parallel()
	raw := func(m *inference.ModelInferRequest, raw ...[]byte) *inference.ModelInferRequest {
		m.RawInputContents = raw
		return m
	}
	param := func(p *inference.InferParameter) *inference.ModelInferRequest {
		return &inference.ModelInferRequest{Parameters: map[string]*inference.InferParameter{"p": p}}
	}
	tests := []struct {
		name string
		m    *inference.ModelInferRequest
		err  string
	}{
		{"nil", nil, "request: missing"},
		{"raw count", raw(typed(FP32, []int64{1}, nil), f32s(1), f32s(2)), "raw_input_contents has 2 entries for 1 inputs"},
		{"raw and contents", raw(typed(FP32, []int64{1}, &inference.InferTensorContents{Fp32Contents: []float32{1}}), f32s(1)), "input x: contents given along with raw contents"},
		{"raw size", raw(typed(FP32, []int64{2}, nil), f32s(1)), "input x: shape [2] holds 2 FP32 elements (8 bytes), data has 4 bytes"},
		{"raw BYTES trailing", raw(typed(Bytes, []int64{1}, nil), append(le32(0), 1)), "input x: BYTES data has 1 trailing bytes after its 1 elements"},
		{"contents count", typed(FP32, []int64{2, 3}, &inference.InferTensorContents{Fp32Contents: make([]float32, 5)}), "input x: shape [2 3] holds 6 elements, fp32_contents has 5"},
		{"contents missing", typed(Int64, []int64{1}, nil), "input x: shape [1] holds 1 elements, int64_contents has 0"},
		{"wrong contents field", typed(FP32, []int64{1}, &inference.InferTensorContents{Fp64Contents: []float64{1}}), "input x: FP32 data belongs in fp32_contents, but other contents fields hold 1 elements"},
		{"INT8 out of range", typed(Int8, []int64{1}, &inference.InferTensorContents{IntContents: []int32{128}}), "input x: int_contents value 128 is out of range for INT8"},
		{"UINT16 out of range", typed(Uint16, []int64{1}, &inference.InferTensorContents{UintContents: []uint32{65536}}), "input x: uint_contents value 65536 is out of range for UINT16"},
		{"FP16 in contents", typed(FP16, []int64{1}, &inference.InferTensorContents{Fp32Contents: []float32{1}}), "input x: FP16 data must come in raw contents"},
		{"unknown datatype", typed("FP8", []int64{1}, nil), `input x: unknown datatype "FP8"`},
		{"negative dimension", typed(FP32, []int64{-2}, nil), "input x: negative dimension -2 in shape [-2]"},
		{"missing name", &inference.ModelInferRequest{Inputs: []*inference.ModelInferRequest_InferInputTensor{{Datatype: "FP32"}}}, "inputs[0]: missing name"},
		{"duplicate input", &inference.ModelInferRequest{Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "a", Datatype: "FP32", Shape: []int64{0}}, {Name: "a", Datatype: "FP32", Shape: []int64{0}}}}, "duplicate input a"},
		{"uint64 parameter overflow", param(&inference.InferParameter{ParameterChoice: &inference.InferParameter_Uint64Param{Uint64Param: math.MaxUint64}}), "request: parameter p: uint64 value 18446744073709551615 overflows int64"},
		{"empty parameter", param(&inference.InferParameter{}), "request: parameter p: no value"},
		{"nil parameter", param(nil), "request: parameter p: no value"},
		{"binary_data_output not a bool", &inference.ModelInferRequest{Parameters: map[string]*inference.InferParameter{"binary_data_output": {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "yes"}}}}, "request: parameter binary_data_output: want true or false"},
		{"output parameter", &inference.ModelInferRequest{Outputs: []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "y", Parameters: map[string]*inference.InferParameter{"p": nil}}}}, "output y: parameter p: no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := RequestFromProto(tt.m)
			wantInvalid(t, err, tt.err)
			if r != nil {
				t.Errorf("got a request with the error: %+v", r)
			}
		})
	}

	_, err := ResponseFromProto(nil)
	wantInvalid(t, err, "response: missing")
	_, err = ResponseFromProto(&inference.ModelInferResponse{
		Outputs:           []*inference.ModelInferResponse_InferOutputTensor{{Name: "y", Datatype: "FP32", Shape: []int64{1}}},
		RawOutputContents: [][]byte{f32s(1), f32s(2)},
	})
	wantInvalid(t, err, "raw_output_contents has 2 entries for 1 outputs")
	_, err = ResponseFromProto(&inference.ModelInferResponse{
		Outputs:           []*inference.ModelInferResponse_InferOutputTensor{{Name: "y", Datatype: "FP32", Shape: []int64{2}}},
		RawOutputContents: [][]byte{f32s(1)},
	})
	wantInvalid(t, err, "output y: shape [2] holds 2 FP32 elements (8 bytes), data has 4 bytes")
}
