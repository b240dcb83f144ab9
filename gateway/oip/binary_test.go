package oip

import (
	"testing"
)

func TestDecodeRequestBinary(t *testing.T) {
	t.Parallel()
	body, n := binaryBody(`{"id":"b","inputs":[`+
		`{"name":"x","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8,"keep":1}},`+
		`{"name":"j","datatype":"INT32","shape":[2],"data":[3,4]},`+
		`{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":11}},`+
		`{"name":"z","datatype":"FP64","shape":[0],"parameters":{"binary_data_size":0}}]}`,
		f32s(1.5, -2), append(append(le32(3), "abc"...), le32(0)...))
	got, err := DecodeRequestBinary(body, n)
	if err != nil {
		t.Fatal(err)
	}
	want := &InferRequest{ID: "b", Inputs: []Tensor{
		NewFP32("x", []int64{1, 2}, []float32{1.5, -2}),
		NewInt32("j", []int64{2}, []int32{3, 4}),
		NewBytes("s", []int64{2}, [][]byte{[]byte("abc"), {}}),
		{Name: "z", Datatype: FP64, Shape: []int64{0}},
	}}
	want.Inputs[0].Parameters = map[string]any{"keep": int64(1)}
	wantRequest(t, got, want)

	// The data aliases the body rather than copying it.
	if &got.Inputs[0].Data[0] != &body[n] {
		t.Error("binary data was copied")
	}
	// Capacity is clipped: appending to one input cannot overwrite the next.
	if cap(got.Inputs[0].Data) != 8 {
		t.Errorf("cap = %d, want 8", cap(got.Inputs[0].Data))
	}
}

func TestDecodeRequestBinaryErrors(t *testing.T) {
	t.Parallel()
	fp32 := func(size string) string {
		return `{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":` + size + `}}]}`
	}
	tests := []struct {
		name      string
		body      []byte
		headerLen int
		err       string
	}{
		{"header beyond body", []byte(`{"inputs":[]}`), 100, "binary header length 100 beyond body of 13 bytes"},
		{"header length zero", []byte(`{"inputs":[]}`), 0, "binary header length 0 is not positive"},
		{"header length negative", []byte(`{"inputs":[]}`), -1, "binary header length -1 is not positive"},
		{"header cuts the JSON", []byte(`{"inputs":[]}`), 5, "malformed JSON: unexpected end of input"},
		{"header leaves JSON in the binary part", []byte(`{"inputs":[]} `), 13, "binary data has 1 bytes beyond those the inputs' binary_data_size take"},
		{"leftover binary data", func() []byte { b, _ := binaryBody(fp32("8"), f32s(1, 2, 3)); return b }(), len(fp32("8")), "binary data has 4 bytes beyond those the inputs' binary_data_size take"},
		{"size beyond the binary data", func() []byte { b, _ := binaryBody(fp32("8"), f32s(1)); return b }(), len(fp32("8")), "input x: binary_data_size 8 beyond the 4 bytes of binary data left"},
		{"size not matching the shape", func() []byte { b, _ := binaryBody(fp32("4"), f32s(1)); return b }(), len(fp32("4")), "input x: shape [2] holds 2 FP32 elements (8 bytes), data has 4 bytes"},
		{"size negative", []byte(fp32("-8")), len(fp32("-8")), "input x: parameter binary_data_size: want a non-negative integer, got -8"},
		{"size a string", []byte(fp32(`"8"`)), len(fp32(`"8"`)), "want a non-negative integer, got 8"},
		{
			"BYTES trailing bytes",
			func() []byte {
				b, _ := binaryBody(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":9}}]}`, le32(3), []byte("abcde"))
				return b
			}(),
			len(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":9}}]}`),
			"input s: BYTES data has 2 trailing bytes after its 1 elements",
		},
		{
			"BYTES element beyond its data",
			func() []byte {
				b, _ := binaryBody(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":7}}]}`, le32(3), []byte("abc"))
				return b
			}(),
			len(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":7}}]}`),
			"input s: BYTES data ends at element 1 of 2",
		},
		{
			"BOOL not 0 or 1",
			func() []byte {
				b, _ := binaryBody(`{"inputs":[{"name":"b","datatype":"BOOL","shape":[1],"parameters":{"binary_data_size":1}}]}`, []byte{7})
				return b
			}(),
			len(`{"inputs":[{"name":"b","datatype":"BOOL","shape":[1],"parameters":{"binary_data_size":1}}]}`),
			"input b: BOOL element 0 is 7, want 0 or 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := DecodeRequestBinary(tt.body, tt.headerLen)
			wantInvalid(t, err, tt.err)
			if r != nil {
				t.Errorf("got a request with the error: %+v", r)
			}
		})
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	choices := map[string]func(string) bool{
		"none":      nil,
		"all":       func(string) bool { return true },
		"alternate": func(name string) bool { return len(name)%2 == 0 },
	}
	for name, binary := range choices {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := sampleRequest()
			js, bin, err := EncodeRequestBinary(want, binary)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRequestBinary(append(js, bin...), len(js))
			if err != nil {
				t.Fatalf("%v\n%s", err, js)
			}
			wantRequest(t, got, want)

			resp := sampleResponse()
			js, bin, err = EncodeResponseJSON(resp, binary)
			if err != nil {
				t.Fatal(err)
			}
			gotResp, err := DecodeResponseBinary(append(js, bin...), len(js))
			if err != nil {
				t.Fatalf("%v\n%s", err, js)
			}
			wantResponse(t, gotResp, resp)
		})
	}
	_, err := DecodeResponseBinary([]byte(`{}`), 3)
	wantInvalid(t, err, "binary header length 3 beyond body of 2 bytes")
}

func TestWantsBinary(t *testing.T) {
	t.Parallel()
	out := func(name string, params map[string]any) RequestedOutput {
		return RequestedOutput{Name: name, Parameters: params}
	}
	tests := []struct {
		name   string
		req    *InferRequest
		output string
		want   bool
	}{
		{"nil request", nil, "y", false},
		{"nothing asked", &InferRequest{}, "y", false},
		{"not requested, request says binary", &InferRequest{Parameters: map[string]any{"binary_data_output": true}}, "y", true},
		{"not requested, request says JSON", &InferRequest{Parameters: map[string]any{"binary_data_output": false}}, "y", false},
		{"requested without parameters", &InferRequest{Outputs: []RequestedOutput{out("y", nil)}}, "y", false},
		{"requested without parameters, request says binary", &InferRequest{Parameters: map[string]any{"binary_data_output": true}, Outputs: []RequestedOutput{out("y", nil)}}, "y", true},
		{"output says binary", &InferRequest{Outputs: []RequestedOutput{out("y", map[string]any{"binary_data": true})}}, "y", true},
		{"output says JSON", &InferRequest{Outputs: []RequestedOutput{out("y", map[string]any{"binary_data": false})}}, "y", false},
		{"output says JSON over the request", &InferRequest{Parameters: map[string]any{"binary_data_output": true}, Outputs: []RequestedOutput{out("y", map[string]any{"binary_data": false})}}, "y", false},
		{"output says binary over the request", &InferRequest{Parameters: map[string]any{"binary_data_output": false}, Outputs: []RequestedOutput{out("y", map[string]any{"binary_data": true})}}, "y", true},
		{"another output says binary", &InferRequest{Outputs: []RequestedOutput{out("z", map[string]any{"binary_data": true})}}, "y", false},
		{"another output says JSON, request binary", &InferRequest{Parameters: map[string]any{"binary_data_output": true}, Outputs: []RequestedOutput{out("z", map[string]any{"binary_data": false})}}, "y", true},
		{"other output parameters", &InferRequest{Parameters: map[string]any{"binary_data_output": true}, Outputs: []RequestedOutput{out("y", map[string]any{"classification": int64(3)})}}, "y", true},
		{"non-bool values count as unset", &InferRequest{Parameters: map[string]any{"binary_data_output": "true"}, Outputs: []RequestedOutput{out("y", map[string]any{"binary_data": int64(1)})}}, "y", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.req.WantsBinary(tt.output); got != tt.want {
				t.Errorf("WantsBinary(%q) = %v, want %v", tt.output, got, tt.want)
			}
		})
	}

	// From a decoded request, as the gateway uses it.
	req, err := DecodeRequestJSON([]byte(`{"parameters":{"binary_data_output":true},"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":false}},{"name":"b"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.WantsBinary("a") || !req.WantsBinary("b") || !req.WantsBinary("c") {
		t.Errorf("WantsBinary a, b, c = %v, %v, %v", req.WantsBinary("a"), req.WantsBinary("b"), req.WantsBinary("c"))
	}
}
