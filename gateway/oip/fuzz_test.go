package oip

import (
	"errors"
	"testing"
)

// jsonSeeds are request bodies, valid and not, to start fuzzing from.
func jsonSeeds(f *testing.F) [][]byte {
	f.Helper()
	seeds := [][]byte{
		[]byte(`{"inputs":[]}`),
		[]byte(`{"id":"\u00e9\ud83d\ude00\ud800","parameters":{"a":1,"b":2.5,"c":"s","d":true,"e":-0,"f":1e400},"inputs":[],"outputs":[{"name":"o","parameters":{"binary_data":true}}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP16","data":[[1,-2.5],[65504,NaN]]}]}`),
		[]byte(`{"inputs":[{"data":[1,2],"datatype":"UINT8","shape":[2],"name":"late"}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[3],"datatype":"INT64","data":[1.0,-2e3,9223372036854775807]}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[true]},{"name":"y","shape":[0],"datatype":"BYTES","data":[]}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[2],"datatype":"BYTES","data":["a\"b",""]}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[0],"datatype":"FP32","parameters":{"binary_data_size":0}}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[-Infinity]}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[2,-1],"datatype":"FP32","data":[]}]}`),
		[]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[300]}]}`),
		[]byte(`{"inputs":[`),
	}
	// Small seeds: the fuzzer minimizes every input that finds new
	// coverage, which takes long for big ones.
	requests := []*InferRequest{sampleRequest()}
	for _, tensor := range everyTensor() {
		requests = append(requests, &InferRequest{Inputs: []Tensor{tensor}})
	}
	for _, r := range requests {
		js, err := EncodeRequestJSON(r)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, js)
	}
	return seeds
}

func FuzzDecodeRequestJSON(f *testing.F) {
	for _, s := range jsonSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRequestJSON(body)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || r != nil {
				t.Fatalf("error %v (request %v) does not wrap ErrInvalid", err, r)
			}
			return
		}
		js, err := EncodeRequestJSON(r)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		again, err := DecodeRequestJSON(js)
		if err != nil {
			t.Fatalf("encoded request does not decode: %v\n%s", err, js)
		}
		wantRequest(t, again, r)
	})
}

func FuzzDecodeRequestBinary(f *testing.F) {
	for _, s := range jsonSeeds(f) {
		f.Add(s, len(s))
	}
	for _, binary := range []func(string) bool{nil, func(string) bool { return true }, func(name string) bool { return len(name)%2 == 0 }} {
		js, bin, err := EncodeRequestBinary(sampleRequest(), binary)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(js, bin...), len(js))
	}
	body, n := binaryBody(`{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":9}}]}`, le32(1), []byte{0xff}, le32(0))
	f.Add(body, n)
	f.Add(body, n+3)
	f.Add(body, 0)
	f.Add(body, -5)
	f.Add(body, len(body)+1)
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		r, err := DecodeRequestBinary(body, headerLen)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || r != nil {
				t.Fatalf("error %v (request %v) does not wrap ErrInvalid", err, r)
			}
			return
		}
		// Binary data need not be UTF-8, so it goes back as binary.
		js, bin, err := EncodeRequestBinary(r, func(string) bool { return true })
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		again, err := DecodeRequestBinary(append(js, bin...), len(js))
		if err != nil {
			t.Fatalf("encoded request does not decode: %v\n%s", err, js)
		}
		wantRequest(t, again, r)
	})
}

func FuzzPayload(f *testing.F) {
	add := func(v interface{ MarshalBinary() ([]byte, error) }) {
		b, err := v.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	add(sampleRequest())
	add(sampleResponse())
	add(&InferRequest{})
	add(&InferResponse{ModelName: "m"})
	for _, tensor := range everyTensor() {
		add(&InferRequest{Inputs: []Tensor{tensor}})
		add(&InferResponse{Outputs: []Tensor{tensor}})
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req InferRequest
		if err := req.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		} else {
			p, err := req.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded request does not marshal: %v", err)
			}
			var again InferRequest
			if err := again.UnmarshalBinary(p); err != nil {
				t.Fatalf("marshalled request does not unmarshal: %v", err)
			}
			wantRequest(t, &again, &req)
		}

		var resp InferResponse
		if err := resp.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		p, err := resp.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded response does not marshal: %v", err)
		}
		var again InferResponse
		if err := again.UnmarshalBinary(p); err != nil {
			t.Fatalf("marshalled response does not unmarshal: %v", err)
		}
		wantResponse(t, &again, &resp)
	})
}
