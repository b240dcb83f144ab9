package oip

import (
	"fmt"
	"strings"
	"testing"
)

// benchRequest has one 1×1000 FP32 input.
func benchRequest() *InferRequest {
	v := make([]float32, 1000)
	for i := range v {
		v[i] = float32(i)*0.731 - 300
	}
	return &InferRequest{ID: "bench", Inputs: []Tensor{NewFP32("INPUT0", []int64{1, 1000}, v)}}
}

// benchJSON is benchRequest in REST JSON, nested as a client writes it.
func benchJSON() []byte {
	var b strings.Builder
	b.WriteString(`{"id":"bench","inputs":[{"name":"INPUT0","shape":[1,1000],"datatype":"FP32","data":[[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, float32(i)*0.731-300)
	}
	b.WriteString(`]]}]}`)
	return []byte(b.String())
}

func BenchmarkDecodeRequestJSON(b *testing.B) {
	body := benchJSON()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequestJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeResponseJSON(b *testing.B) {
	resp := &InferResponse{ModelName: "m", ID: "bench", Outputs: benchRequest().Inputs}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EncodeResponseJSON(resp, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPayloadRoundTrip(b *testing.B) {
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		p, err := req.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		var got InferRequest
		if err := got.UnmarshalBinary(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPayloadMarshal(b *testing.B) {
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := req.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPayloadUnmarshal(b *testing.B) {
	p, err := benchRequest().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var got InferRequest
		if err := got.UnmarshalBinary(p); err != nil {
			b.Fatal(err)
		}
	}
}
