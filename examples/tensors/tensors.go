// Package tensors holds small models served over the Open Inference
// Protocol: each is an application whose name is the model name, so
// tritonclient and the KServe SDK call them unchanged.
package tensors

import (
	"context"
	"strings"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// input returns the named input or a not-found error naming it.
func input(req *oip.InferRequest, name string) (*oip.Tensor, error) {
	for i := range req.Inputs {
		if req.Inputs[i].Name == name {
			return &req.Inputs[i], nil
		}
	}
	return nil, streams.Errorf(streams.CodeInvalidArgument, "input %s is missing", name)
}

func invalid(err error) error { return streams.Errorf(streams.CodeInvalidArgument, "%v", err) }

// Doubler: OUTPUT0 = 2 * INPUT0, FP32, any shape.
var Doubler = serve.Func("Doubler", func(_ context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	in, err := input(req, "INPUT0")
	if err != nil {
		return nil, err
	}
	xs, err := in.Float32s()
	if err != nil {
		return nil, invalid(err)
	}
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = 2 * x
	}
	return &oip.InferResponse{Outputs: []oip.Tensor{oip.NewFP32("OUTPUT0", in.Shape, out)}}, nil
})

// Adder64: SUM = A + B, INT64, same shape.
var Adder64 = serve.Func("Adder64", func(_ context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	a, err := input(req, "A")
	if err != nil {
		return nil, err
	}
	b, err := input(req, "B")
	if err != nil {
		return nil, err
	}
	xs, err := a.Int64s()
	if err != nil {
		return nil, invalid(err)
	}
	ys, err := b.Int64s()
	if err != nil {
		return nil, invalid(err)
	}
	if len(xs) != len(ys) {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "inputs A and B differ in size: %d and %d elements", len(xs), len(ys))
	}
	sum := make([]int64, len(xs))
	for i := range xs {
		sum[i] = xs[i] + ys[i]
	}
	return &oip.InferResponse{Outputs: []oip.Tensor{oip.NewInt64("SUM", a.Shape, sum)}}, nil
})

// Upper: UPPER = upper-cased TEXT, BYTES.
var Upper = serve.Func("Upper", func(_ context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	in, err := input(req, "TEXT")
	if err != nil {
		return nil, err
	}
	ss, err := in.ByteStrings()
	if err != nil {
		return nil, invalid(err)
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(strings.ToUpper(string(s)))
	}
	return &oip.InferResponse{Outputs: []oip.Tensor{oip.NewBytes("UPPER", in.Shape, out)}}, nil
})

func signature(inputs, outputs []spec.TensorSpec) serve.AppOption {
	return serve.InferenceSignature(spec.Inference{Platform: "sluice", Versions: []string{"1"}, Inputs: inputs, Outputs: outputs})
}

// Apps are the three models, each an application named like the model.
func Apps() []*serve.Application {
	return []*serve.Application{
		serve.MustApp("doubler", "/doubler", Doubler.Bind(), signature(
			[]spec.TensorSpec{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{-1}}},
			[]spec.TensorSpec{{Name: "OUTPUT0", Datatype: "FP32", Shape: []int64{-1}}})),
		serve.MustApp("adder64", "/adder64", Adder64.Bind(), signature(
			[]spec.TensorSpec{{Name: "A", Datatype: "INT64", Shape: []int64{-1}}, {Name: "B", Datatype: "INT64", Shape: []int64{-1}}},
			[]spec.TensorSpec{{Name: "SUM", Datatype: "INT64", Shape: []int64{-1}}})),
		serve.MustApp("upper", "/upper", Upper.Bind(), signature(
			[]spec.TensorSpec{{Name: "TEXT", Datatype: "BYTES", Shape: []int64{-1}}},
			[]spec.TensorSpec{{Name: "UPPER", Datatype: "BYTES", Shape: []int64{-1}}})),
	}
}
