package oip

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	want := sampleRequest()
	b, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != cap(b) {
		t.Errorf("payload len %d, cap %d: not sized exactly", len(b), cap(b))
	}
	var got InferRequest
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	wantRequest(t, &got, want)

	resp := sampleResponse()
	b, err = resp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var gotResp InferResponse
	if err := gotResp.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	wantResponse(t, &gotResp, resp)

	// Unmarshalling replaces what was there.
	if err := gotResp.UnmarshalBinary(mustMarshal(t, &InferResponse{ModelName: "other"})); err != nil {
		t.Fatal(err)
	}
	wantResponse(t, &gotResp, &InferResponse{ModelName: "other"})
}

// TestPayloadPerDatatype round-trips each tensor alone, so that a failure
// names its datatype.
func TestPayloadPerDatatype(t *testing.T) {
	t.Parallel()
	for _, tensor := range everyTensor() {
		t.Run(tensor.Name, func(t *testing.T) {
			t.Parallel()
			want := &InferResponse{ModelName: "m", Outputs: []Tensor{tensor}}
			var got InferResponse
			if err := got.UnmarshalBinary(mustMarshal(t, want)); err != nil {
				t.Fatal(err)
			}
			wantResponse(t, &got, want)
		})
	}
}

func mustMarshal(t *testing.T, v interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPayloadLayout(t *testing.T) {
	t.Parallel()
	req := &InferRequest{ID: "r", Inputs: []Tensor{
		NewFP32("a", []int64{2}, []float32{1, 2}),
		NewBytes("s", nil, [][]byte{[]byte("hi")}),
	}}
	req.Inputs[1].Parameters = map[string]any{"binary_data_size": int64(1234)} // stale: replaced
	b := mustMarshal(t, req)
	n := binary.BigEndian.Uint32(b)
	js := b[4 : 4+n]
	want := `{"id":"r","inputs":[` +
		`{"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},` +
		`{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]}`
	if string(js) != want {
		t.Errorf("header\n got %s\nwant %s", js, want)
	}
	if !json.Valid(js) {
		t.Error("header is not valid JSON")
	}
	data := string(b[4+n:])
	if wantData := string(f32s(1, 2)) + "\x02\x00\x00\x00hi"; data != wantData {
		t.Errorf("data %q, want %q", data, wantData)
	}

	// The decoded data aliases the payload.
	var got InferRequest
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if &got.Inputs[0].Data[0] != &b[4+n] {
		t.Error("data was copied")
	}
	if got.Inputs[1].Parameters != nil {
		t.Errorf("binary_data_size kept: %v", got.Inputs[1].Parameters)
	}

	resp := &InferResponse{ModelName: "m", ModelVersion: "2", ID: "r", Parameters: map[string]any{"p": int64(1)}}
	b = mustMarshal(t, resp)
	n = binary.BigEndian.Uint32(b)
	if want := `{"model_name":"m","model_version":"2","id":"r","parameters":{"p":1},"outputs":[]}`; string(b[4:4+n]) != want || len(b) != int(4+n) {
		t.Errorf("response payload %q", b)
	}
}

func TestPayloadErrors(t *testing.T) {
	t.Parallel()
	payload := func(js string, data ...[]byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(js)))
		b = append(b, js...)
		for _, d := range data {
			b = append(b, d...)
		}
		return b
	}
	fp32 := `{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}`
	tests := []struct {
		name string
		b    []byte
		err  string
	}{
		{"empty", nil, "payload of 0 bytes is shorter than its 4-byte header length"},
		{"short", []byte{0, 0, 1}, "payload of 3 bytes is shorter than its 4-byte header length"},
		{"header beyond", []byte{0, 0, 1, 0, '{', '}'}, "payload header length 256 beyond the 2 bytes that follow it"},
		{"huge header", []byte{0xff, 0xff, 0xff, 0xff}, "payload header length 4294967295 beyond the 0 bytes that follow it"},
		{"empty header", payload(""), "malformed JSON: unexpected end of input"},
		{"malformed header", payload(`{"inputs":[}`), "malformed JSON at offset 11"},
		{"short data", payload(fp32, f32s(1)), "input x: binary_data_size 8 beyond the 4 bytes of binary data left"},
		{"long data", payload(fp32, f32s(1, 2, 3)), "binary data has 4 bytes beyond those the inputs' binary_data_size take"},
		{"size not matching the shape", payload(strings.Replace(fp32, ":8", ":4", 1), f32s(1)), "input x: shape [2] holds 2 FP32 elements (8 bytes), data has 4 bytes"},
		{"a response", payload(`{"model_name":"m","outputs":[]}`), `request: missing inputs`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r InferRequest
			wantInvalid(t, r.UnmarshalBinary(tt.b), tt.err)
			if r.Inputs != nil || r.ID != "" {
				t.Errorf("request changed on error: %+v", r)
			}
		})
	}

	var resp InferResponse
	wantInvalid(t, resp.UnmarshalBinary(payload(fp32, f32s(1, 2))), `response: unknown field "inputs"`)
	wantInvalid(t, resp.UnmarshalBinary(payload(`{"outputs":[{"name":"y","datatype":"INT8","shape":[1],"parameters":{"binary_data_size":2}}]}`, []byte{1, 2})), "output y: shape [1] holds 1 INT8 elements (1 bytes), data has 2 bytes")

	_, err := (&InferRequest{Inputs: []Tensor{{Name: "x", Datatype: FP32, Shape: []int64{1}}}}).MarshalBinary()
	wantInvalid(t, err, "input x: shape [1] holds 1 FP32 elements (4 bytes), data has 0 bytes")
	_, err = (&InferResponse{Outputs: []Tensor{NewFP32("y", nil, nil), NewFP32("y", nil, nil)}}).MarshalBinary()
	wantInvalid(t, err, "duplicate output y")
}

// TestPayloadAllocs checks the hot path: MarshalBinary makes one
// allocation, the payload itself.
func TestPayloadAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	req := benchRequest()
	_ = mustMarshal(t, req) // warm the header buffer pool
	if n := testing.AllocsPerRun(100, func() { _, _ = req.MarshalBinary() }); n > 1 {
		t.Errorf("MarshalBinary makes %v allocations, want 1", n)
	}
}
