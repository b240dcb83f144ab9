package oip

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// input wraps one input tensor's JSON in a request.
func input(tensor string) string { return `{"inputs":[` + tensor + `]}` }

func TestDecodeRequestJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, err string
	}{
		// Malformed JSON.
		{"empty", ``, "malformed JSON: unexpected end of input, want an object"},
		{"truncated", `{"inputs": [`, "malformed JSON: unexpected end of input"},
		{"not an object", `[]`, `malformed JSON at offset 0: unexpected '[', want an object`},
		{"trailing data", `{"inputs":[]} x`, `malformed JSON at offset 14: unexpected 'x' after the document`},
		{"two documents", `{"inputs":[]}{}`, "after the document"},
		{"trailing comma", input(`{"name":"x","datatype":"INT32","shape":[1],"data":[1,]}`), "unexpected ']', want a number, string, bool or array"},
		{"leading zero", input(`{"name":"x","datatype":"INT32","shape":[1],"data":[01]}`), "unexpected '1', want ',' or ']'"},
		{"bad number", input(`{"name":"x","datatype":"FP32","shape":[1],"data":[1.]}`), "want a digit"},
		{"single quotes", `{'inputs':[]}`, "want a string"},
		{"bad escape", `{"id":"\x","inputs":[]}`, `unknown escape \x`},
		{"bad unicode escape", `{"id":"\u12G4","inputs":[]}`, `bad \u escape`},
		{"control character", "{\"id\":\"a\nb\",\"inputs\":[]}", "want no control characters in a string"},
		{"invalid UTF-8", "{\"id\":\"\xff\",\"inputs\":[]}", "malformed JSON: not valid UTF-8"},
		{"unclosed data", `{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1`, "input x: malformed JSON: unexpected end of input"},
		{"unclosed data before the datatype", `{"inputs":[{"name":"x","data":[1`, "malformed JSON: unexpected end of input, want ']'"},
		{"object in data before the datatype", input(`{"data":[1,{}],"name":"x"}`), "unexpected '{', want a number, string, bool or array"},
		{"deep nesting before the datatype", input(`{"name":"x","data":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `,"datatype":"INT32","shape":[0]}`), "arrays nest deeper than 64"},
		{"deep nesting", input(`{"name":"x","datatype":"INT32","shape":[1],"data":` + strings.Repeat("[", 100) + "1" + strings.Repeat("]", 100) + `}`), "arrays nest deeper than 64"},

		// Request structure.
		{"unknown top-level field", `{"inputs":[],"model":"m"}`, `request: unknown field "model"`},
		{"field names are case-sensitive", `{"Inputs":[]}`, `request: unknown field "Inputs"`},
		{"repeated field", `{"inputs":[],"inputs":[]}`, `request: field "inputs" given twice`},
		{"missing inputs", `{"id":"a"}`, "request: missing inputs"},
		{"inputs not an array", `{"inputs":{}}`, "want an array"},
		{"id not a string", `{"id":1,"inputs":[]}`, "want a string"},
		{"parameter object", `{"parameters":{"a":{}},"inputs":[]}`, "request: parameter a: want a bool, number or string"},
		{"parameter null", `{"parameters":{"a":null},"inputs":[]}`, "request: parameter a: want a bool, number or string"},
		{"parameter repeated", `{"parameters":{"a":1,"a":2},"inputs":[]}`, "request: parameter a given twice"},
		{"parameter out of range", `{"parameters":{"a":1e400},"inputs":[]}`, "request: parameter a: 1e400 is out of range"},
		{"binary_data_output not a bool", `{"parameters":{"binary_data_output":1},"inputs":[]}`, "request: parameter binary_data_output: want true or false, got 1"},

		// Tensors.
		{"unknown tensor field", input(`{"name":"x","datatype":"INT32","shape":[1],"data":[1],"contents":[]}`), `input x: unknown field "contents"`},
		{"unknown field before the name", input(`{"foo":1,"name":"x"}`), `inputs[0]: unknown field "foo"`},
		{"repeated tensor field", input(`{"name":"x","name":"y"}`), `input x: field "name" given twice`},
		{"missing name", input(`{"datatype":"INT32","shape":[1],"data":[1]}`), "inputs[0]: missing name"},
		{"empty name", input(`{"name":"","datatype":"INT32","shape":[1],"data":[1]}`), "inputs[0]: missing name"},
		{"missing datatype", input(`{"name":"x","shape":[1],"data":[1]}`), "input x: missing datatype"},
		{"missing shape", input(`{"name":"x","datatype":"INT32","data":[1]}`), "input x: missing shape"},
		{"missing data", input(`{"name":"x","datatype":"INT32","shape":[1]}`), "input x: missing data"},
		{"unknown datatype", input(`{"name":"x","datatype":"FP8","shape":[1],"data":[1]}`), `input x: unknown datatype "FP8"`},
		{"lowercase datatype", input(`{"name":"x","datatype":"fp32","shape":[1],"data":[1]}`), `input x: unknown datatype "fp32"`},
		{"negative dimension", input(`{"name":"x","datatype":"INT32","shape":[2,-1],"data":[]}`), "input x: negative dimension -1 in shape [2 -1]"},
		{"fractional dimension", input(`{"name":"x","datatype":"INT32","shape":[1.5],"data":[1]}`), "input x: shape: 1.5 is not an int64"},
		{"shape overflow", input(`{"name":"x","datatype":"INT32","shape":[4294967296,4294967296],"data":[]}`), "input x: shape [4294967296 4294967296] holds more than"},
		{"shape not numbers", input(`{"name":"x","datatype":"INT32","shape":["1"],"data":[1]}`), "want a number"},
		{"too little data", input(`{"name":"INPUT0","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5]}`), "input INPUT0: shape [2 3] holds 6 elements, data has 5"},
		{"too much data", input(`{"name":"x","datatype":"FP32","shape":[2],"data":[1,2,3]}`), "input x: shape [2] holds 2 elements, data has 3"},
		{"nested data short", input(`{"name":"x","datatype":"INT64","shape":[2,2],"data":[[1,2],[3]]}`), "input x: shape [2 2] holds 4 elements, data has 3"},
		{"data for zero elements", input(`{"name":"x","datatype":"INT64","shape":[0],"data":[1]}`), "shape [0] holds 0 elements, data has 1"},
		{"data not an array", input(`{"name":"x","datatype":"INT32","shape":[],"data":1}`), "want an array"},
		{"object in data", input(`{"name":"x","datatype":"INT32","shape":[1],"data":[{}]}`), "unexpected '{', want a number, string, bool or array"},
		{"duplicate input", `{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1]},{"name":"x","datatype":"INT32","shape":[1],"data":[2]}]}`, "duplicate input x"},
		{"input parameter not scalar", input(`{"name":"x","datatype":"INT32","shape":[1],"data":[1],"parameters":{"p":[1]}}`), "input x: parameter p: want a bool, number or string"},

		// Elements.
		{"UINT8 out of range", input(`{"name":"x","datatype":"UINT8","shape":[2],"data":[1,300]}`), "input x: element 1: 300 is out of range for UINT8"},
		{"out of range, data first", input(`{"data":[300],"datatype":"UINT8","shape":[1],"name":"x"}`), "input x: element 0: 300 is out of range for UINT8"},
		{"UINT8 negative", input(`{"name":"x","datatype":"UINT8","shape":[1],"data":[-1]}`), "element 0: -1 is out of range for UINT8"},
		{"INT8 out of range", input(`{"name":"x","datatype":"INT8","shape":[1],"data":[-129]}`), "-129 is out of range for INT8"},
		{"INT16 out of range", input(`{"name":"x","datatype":"INT16","shape":[1],"data":[32768]}`), "32768 is out of range for INT16"},
		{"UINT16 out of range", input(`{"name":"x","datatype":"UINT16","shape":[1],"data":[65536]}`), "65536 is out of range for UINT16"},
		{"INT32 out of range", input(`{"name":"x","datatype":"INT32","shape":[1],"data":[2147483648]}`), "out of range for INT32"},
		{"UINT32 out of range", input(`{"name":"x","datatype":"UINT32","shape":[1],"data":[4294967296]}`), "out of range for UINT32"},
		{"INT64 out of range", input(`{"name":"x","datatype":"INT64","shape":[1],"data":[9223372036854775808]}`), "9223372036854775808 is out of range for INT64"},
		{"UINT64 out of range", input(`{"name":"x","datatype":"UINT64","shape":[1],"data":[18446744073709551616]}`), "out of range for UINT64"},
		{"integer exponent out of range", input(`{"name":"x","datatype":"INT64","shape":[1],"data":[1e19]}`), "1e19 is out of range for INT64"},
		{"integer beyond float64", input(`{"name":"x","datatype":"INT64","shape":[1],"data":[1e400]}`), "1e400 is out of range for INT64"},
		{"INT64 fraction", input(`{"name":"x","datatype":"INT64","shape":[1],"data":[1.5]}`), "input x: element 0: INT64 needs an integer, got 1.5"},
		{"UINT8 fraction", input(`{"name":"x","datatype":"UINT8","shape":[1],"data":[0.5]}`), "UINT8 needs an integer, got 0.5"},
		{"FP32 out of range", input(`{"name":"x","datatype":"FP32","shape":[1],"data":[1e39]}`), "1e39 is out of range for FP32"},
		{"FP64 out of range", input(`{"name":"x","datatype":"FP64","shape":[1],"data":[-1e309]}`), "-1e309 is out of range for FP64"},
		{"FP16 out of range", input(`{"name":"x","datatype":"FP16","shape":[1],"data":[70000]}`), "70000 is out of range for FP16"},
		{"long number cut", input(`{"name":"x","datatype":"INT8","shape":[1],"data":[` + strings.Repeat("9", 100) + `]}`), strings.Repeat("9", 37) + "... is out of range for INT8"},
		{"BOOL number", input(`{"name":"x","datatype":"BOOL","shape":[1],"data":[1]}`), "element 0: BOOL needs true or false, got a number"},
		{"BOOL string", input(`{"name":"x","datatype":"BOOL","shape":[1],"data":["true"]}`), "BOOL needs true or false, got a string"},
		{"BYTES number", input(`{"name":"x","datatype":"BYTES","shape":[1],"data":[1]}`), "BYTES needs a string, got a number"},
		{"BYTES bool", input(`{"name":"x","datatype":"BYTES","shape":[1],"data":[true]}`), "BYTES needs a string, got true"},
		{"FP32 string", input(`{"name":"x","datatype":"FP32","shape":[1],"data":["1"]}`), "FP32 needs a number, got a string"},
		{"FP32 bool", input(`{"name":"x","datatype":"FP32","shape":[1],"data":[false]}`), "FP32 needs a number, got false"},
		{"INT32 NaN", input(`{"name":"x","datatype":"INT32","shape":[1],"data":[NaN]}`), "INT32 needs a number, got NaN"},
		{"UINT8 Infinity", input(`{"name":"x","datatype":"UINT8","shape":[1],"data":[-Infinity]}`), "UINT8 needs a number, got -Infinity"},
		{"null element", input(`{"name":"x","datatype":"FP32","shape":[2],"data":[1,null]}`), "input x: element 1: null is not a value"},
		{"unknown literal", input(`{"name":"x","datatype":"FP32","shape":[1],"data":[nan]}`), "unexpected 'n', want a number, string, bool or array"},

		// The binary extension's parameters, in a body without a binary part.
		{"binary_data_size without binary data", input(`{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}`), "input x: binary_data_size 4 beyond the 0 bytes of binary data left"},
		{"binary_data_size and data", input(`{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}}`), "input x: both data and binary_data_size given"},
		{"binary_data_size negative", input(`{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":-4}}`), "input x: parameter binary_data_size: want a non-negative integer, got -4"},
		{"binary_data_size fractional", input(`{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4.5}}`), "want a non-negative integer, got 4.5"},

		// Requested outputs.
		{"output missing name", `{"inputs":[],"outputs":[{"parameters":{}}]}`, "outputs[0]: missing name"},
		{"output unknown field", `{"inputs":[],"outputs":[{"name":"y","datatype":"FP32"}]}`, `output y: unknown field "datatype"`},
		{"duplicate output", `{"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]}`, "duplicate output y"},
		{"binary_data not a bool", `{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]}`, "output y: parameter binary_data: want true or false, got yes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := DecodeRequestJSON([]byte(tt.body))
			wantInvalid(t, err, tt.err)
			if r != nil {
				t.Errorf("got a request with the error: %+v", r)
			}
		})
	}
}

func TestDecodeRequestJSON(t *testing.T) {
	t.Parallel()
	body := `{
		"id": "42",
		"parameters": {"int": 7, "neg": -1, "float": 0.5, "integral_float": 2.0, "exp": 1e2, "huge": 1e30, "bigint": 18446744073709551615, "str": "s", "yes": true, "no": false},
		"inputs": [
			{"name": "INPUT0", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6.5]]},
			{"datatype": "INT64", "data": [1, -2, 3.0, 4e2], "shape": [4], "name": "late_name", "parameters": {"p": "q"}},
			{"name": "u8", "shape": [3], "datatype": "UINT8", "data": [[0], [255], [-0.0]]},
			{"name": "u64", "shape": [1], "datatype": "UINT64", "data": [18446744073709551615]},
			{"name": "i8", "shape": [2], "datatype": "INT8", "data": [-128, -0]},
			{"name": "fp16", "shape": [4], "datatype": "FP16", "data": [1, -2.5, 65504, 0.1]},
			{"name": "fp64", "shape": [3], "datatype": "FP64", "data": [NaN, Infinity, -Infinity]},
			{"name": "bool", "shape": [1, 2], "datatype": "BOOL", "data": [[true, false]]},
			{"name": "str", "shape": [3], "datatype": "BYTES", "data": ["plain", "", "esc\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800"]},
			{"name": "scalar", "shape": [], "datatype": "INT32", "data": [9]},
			{"name": "empty", "shape": [0, 5], "datatype": "FP32", "data": []},
			{"name": "empty_nested", "shape": [2, 0], "datatype": "BYTES", "data": [[], []]}
		],
		"outputs": [{"name": "out", "parameters": {"binary_data": true}}, {"name": "plain"}]
	}`
	got, err := DecodeRequestJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	fp16 := func(f float64) uint64 {
		h, _ := halfFromFloat64(f)
		return uint64(h)
	}
	want := &InferRequest{
		ID: "42",
		Parameters: map[string]any{
			"int": int64(7), "neg": int64(-1), "float": 0.5, "integral_float": 2.0, "exp": 100.0, "huge": 1e30,
			"bigint": 18446744073709551615.0, "str": "s", "yes": true, "no": false,
		},
		Inputs: []Tensor{
			NewFP32("INPUT0", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6.5}),
			NewInt64("late_name", []int64{4}, []int64{1, -2, 3, 400}),
			rawTensor("u8", Uint8, []int64{3}, 0, 255, 0),
			rawTensor("u64", Uint64, []int64{1}, math.MaxUint64),
			rawTensor("i8", Int8, []int64{2}, 0x80, 0),
			rawTensor("fp16", FP16, []int64{4}, 0x3c00, 0xc100, 0x7bff, 0x2e66),
			NewFP64("fp64", []int64{3}, []float64{math.NaN(), math.Inf(1), math.Inf(-1)}),
			NewBool("bool", []int64{1, 2}, []bool{true, false}),
			NewBytes("str", []int64{3}, [][]byte{[]byte("plain"), {}, []byte("esc\"\\/\b\f\n\r\té😀\uFFFD")}),
			NewInt32("scalar", []int64{}, []int32{9}),
			{Name: "empty", Datatype: FP32, Shape: []int64{0, 5}},
			{Name: "empty_nested", Datatype: Bytes, Shape: []int64{2, 0}},
		},
		Outputs: []RequestedOutput{{Name: "out", Parameters: map[string]any{"binary_data": true}}, {Name: "plain"}},
	}
	want.Inputs[1].Parameters = map[string]any{"p": "q"}
	if fp16(0.1) != 0x2e66 {
		t.Fatalf("0.1 as FP16 = %#x", fp16(0.1))
	}
	wantRequest(t, got, want)
}

// TestDecodeRequestJSONModelName: the KServe SDK's REST client sends
// model_name and model_version in the body; the path names the model, so
// they are read and ignored.
func TestDecodeRequestJSONModelName(t *testing.T) {
	t.Parallel()
	got, err := DecodeRequestJSON([]byte(`{"model_name":"m","model_version":"1","id":"a","inputs":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	wantRequest(t, got, &InferRequest{ID: "a"})
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	want := sampleRequest()
	js, err := EncodeRequestJSON(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequestJSON(js)
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	wantRequest(t, got, want)
	// Encoding is deterministic.
	again, err := EncodeRequestJSON(got)
	if err != nil || string(again) != string(js) {
		t.Fatalf("second encoding differs: %v\n%s\n%s", err, again, js)
	}

	resp := sampleResponse()
	js, bin, err := EncodeResponseJSON(resp, nil)
	if err != nil || bin != nil {
		t.Fatalf("EncodeResponseJSON: %v, %d binary bytes", err, len(bin))
	}
	gotResp, err := DecodeResponseJSON(js)
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	wantResponse(t, gotResp, resp)
}

// TestJSONRoundTripPerDatatype round-trips each tensor alone, so that a
// failure names its datatype.
func TestJSONRoundTripPerDatatype(t *testing.T) {
	t.Parallel()
	for _, tensor := range everyTensor() {
		t.Run(tensor.Name, func(t *testing.T) {
			t.Parallel()
			want := &InferRequest{Inputs: []Tensor{tensor}}
			js, err := EncodeRequestJSON(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRequestJSON(js)
			if err != nil {
				t.Fatalf("%v\n%s", err, js)
			}
			wantRequest(t, got, want)
		})
	}
}

func TestEncodeRequestJSON(t *testing.T) {
	t.Parallel()
	req := &InferRequest{
		Parameters: map[string]any{"b": 2.0, "a": 1, "c": float32(0.5), "d": uint8(3)},
		Inputs:     []Tensor{NewFP32("x", []int64{1, 2}, []float32{1, 0.1}), NewBytes("s", nil, [][]byte{[]byte("a\"\x00")})},
	}
	js, err := EncodeRequestJSON(req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"parameters":{"a":1,"b":2.0,"c":0.5,"d":3},"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,0.1]},{"name":"s","datatype":"BYTES","shape":[1],"data":["a\"\u0000"]}]}`
	if string(js) != want {
		t.Errorf("got  %s\nwant %s", js, want)
	}
	if !json.Valid(js) {
		t.Error("not valid JSON")
	}

	tests := []struct {
		name string
		req  *InferRequest
		err  string
	}{
		{"invalid tensor", &InferRequest{Inputs: []Tensor{{Name: "x", Datatype: FP32, Shape: []int64{2}}}}, "input x: shape [2] holds 2 FP32 elements (8 bytes), data has 0 bytes"},
		{"missing name", &InferRequest{Inputs: []Tensor{{Datatype: FP32, Shape: []int64{0}}}}, "inputs[0]: missing name"},
		{"duplicate", &InferRequest{Inputs: []Tensor{NewFP32("x", nil, nil), NewFP32("x", nil, nil)}}, "duplicate input x"},
		{"bytes not UTF-8", &InferRequest{Inputs: []Tensor{NewBytes("x", nil, [][]byte{[]byte("ok"), {0xff}})}}, "input x: BYTES element 1 is not valid UTF-8"},
		{"name not UTF-8", &InferRequest{Inputs: []Tensor{NewFP32("x\xff", nil, nil)}}, `name "x\xff" is not valid UTF-8`},
		{"parameter type", &InferRequest{Parameters: map[string]any{"p": struct{}{}}, Inputs: []Tensor{}}, "request: parameter p: struct {} value {} is not a bool"},
		{"parameter infinite", &InferRequest{Parameters: map[string]any{"p": math.Inf(1)}}, "request: parameter p: float64 value +Inf"},
		{"output missing name", &InferRequest{Outputs: []RequestedOutput{{}}}, "outputs[0]: missing name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := EncodeRequestJSON(tt.req)
			wantInvalid(t, err, tt.err)
		})
	}
}

func TestEncodeResponseJSON(t *testing.T) {
	t.Parallel()
	resp := &InferResponse{
		ModelName: "m",
		ID:        "7",
		Outputs: []Tensor{
			NewFP32("a", []int64{2}, []float32{1, 2}),
			NewBytes("b", []int64{2}, [][]byte{[]byte("x"), {0xff}}),
			NewInt64("c", []int64{1}, []int64{-5}),
			NewBool("d", []int64{3}, []bool{true, false, true}),
		},
	}
	resp.Outputs[2].Parameters = map[string]any{"binary_data_size": int64(99), "keep": "me"}
	binary := func(name string) bool { return name == "b" || name == "d" }
	js, bin, err := EncodeResponseJSON(resp, binary)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model_name":"m","id":"7","outputs":[` +
		`{"name":"a","datatype":"FP32","shape":[2],"data":[1,2]},` +
		`{"name":"b","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":10}},` +
		`{"name":"c","datatype":"INT64","shape":[1],"parameters":{"keep":"me"},"data":[-5]},` +
		`{"name":"d","datatype":"BOOL","shape":[3],"parameters":{"binary_data_size":3}}]}`
	if string(js) != want {
		t.Errorf("got  %s\nwant %s", js, want)
	}

	// The JSON parses, and the binary_data_size parameters add up to the
	// binary part, which holds the binary outputs' data in order.
	var doc struct {
		ModelName string `json:"model_name"`
		Outputs   []struct {
			Name       string         `json:"name"`
			Parameters map[string]any `json:"parameters"`
			Data       []any          `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, o := range doc.Outputs {
		if size, ok := o.Parameters["binary_data_size"].(float64); ok {
			total += int(size)
			if o.Data != nil {
				t.Errorf("binary output %s has data", o.Name)
			}
		} else if o.Data == nil {
			t.Errorf("output %s has neither data nor binary_data_size", o.Name)
		}
	}
	wantBin := append(append([]byte{}, resp.Outputs[1].Data...), resp.Outputs[3].Data...)
	if total != len(bin) || string(bin) != string(wantBin) {
		t.Errorf("binary part %q (sizes add to %d), want %q", bin, total, wantBin)
	}

	// A client reads it back with the binary part.
	got, err := DecodeResponseBinary(append(js, bin...), len(js))
	if err != nil {
		t.Fatal(err)
	}
	resp.Outputs[2].Parameters = map[string]any{"keep": "me"}
	wantResponse(t, got, resp)

	// model_version appears when set; the BYTES output that is not UTF-8
	// cannot travel as JSON.
	resp.ModelVersion = "2"
	js, _, err = EncodeResponseJSON(resp, func(name string) bool { return name == "b" })
	if err != nil || !strings.HasPrefix(string(js), `{"model_name":"m","model_version":"2","id":"7",`) {
		t.Errorf("got %s, %v", js, err)
	}
	_, _, err = EncodeResponseJSON(resp, nil)
	wantInvalid(t, err, "output b: BYTES element 1 is not valid UTF-8, so JSON cannot carry it: ask for it as binary data")

	// model_name is always there.
	js, _, err = EncodeResponseJSON(&InferResponse{}, nil)
	if err != nil || string(js) != `{"model_name":"","id":"","outputs":[]}` {
		t.Errorf("got %s, %v", js, err)
	}
}

func TestDecodeResponseJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, err string }{
		{"missing outputs", `{"model_name":"m"}`, "response: missing outputs"},
		{"unknown field", `{"model_name":"m","outputs":[],"error":"x"}`, `response: unknown field "error"`},
		{"shape mismatch", `{"outputs":[{"name":"y","datatype":"FP32","shape":[3],"data":[1]}]}`, "output y: shape [3] holds 3 elements, data has 1"},
		{"duplicate output", `{"outputs":[{"name":"y","datatype":"FP32","shape":[0],"data":[]},{"name":"y","datatype":"FP32","shape":[0],"data":[]}]}`, "duplicate output y"},
		{"output missing name", `{"outputs":[{"datatype":"FP32","shape":[0],"data":[]}]}`, "outputs[0]: missing name"},
		{"binary_data_size without a binary part", `{"outputs":[{"name":"y","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]}`, "output y: binary_data_size 4 beyond the 0 bytes of binary data left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeResponseJSON([]byte(tt.body))
			wantInvalid(t, err, tt.err)
		})
	}
}

func TestParametersJSON(t *testing.T) {
	t.Parallel()
	// Integral floats keep their type through JSON.
	want := &InferRequest{Parameters: map[string]any{
		"f": 2.0, "neg": -3.0, "big": 1e21, "tiny": 5e-324, "i": int64(2), "min": int64(math.MinInt64), "zero": 0.0,
	}}
	js, err := EncodeRequestJSON(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequestJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Parameters, want.Parameters) {
		t.Errorf("got %#v from %s", got.Parameters, js)
	}
}

// The KServe SDK's REST client puts model_name (and may put model_version)
// in the request body; the path names the model, so both are ignored.
func TestDecodeRequestJSONIgnoresModelName(t *testing.T) {
	t.Parallel()
	r, err := DecodeRequestJSON([]byte(`{"id":"1","model_name":"m","model_version":"2","inputs":[{"name":"X","datatype":"INT64","shape":[1],"data":[5]}]}`))
	if err != nil || r.ID != "1" || len(r.Inputs) != 1 {
		t.Fatalf("DecodeRequestJSON = %+v, %v", r, err)
	}
	if _, err := DecodeRequestJSON([]byte(`{"model_name":7,"inputs":[]}`)); err == nil {
		t.Fatal("a model_name that is not a string was accepted")
	}
}
