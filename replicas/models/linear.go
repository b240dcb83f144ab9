package models

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
)

// LinearFormat is the artifact format of the linear runtime: a model.json
// holding {"input": "x", "output": "y", "weights": [[...]], "bias": [...]}.
const LinearFormat = "sluice-linear"

// Linear computes y = xW + b over FP32 rows. It needs no native library,
// so it serves in every build, and it is the runtime of the tests and the
// multiplexing benchmark.
type Linear struct{}

type linearModel struct {
	Input   string      `json:"input"`
	Output  string      `json:"output"`
	Weights [][]float32 `json:"weights"` // in × out
	Bias    []float32   `json:"bias"`    // out
}

// Load reads model.json.
func (Linear) Load(_ context.Context, dir string, _ *registry.Version) (Loaded, error) {
	b, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, fmt.Errorf("linear model: %w", err)
	}
	var m linearModel
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("linear model.json: %w", err)
	}
	if m.Input == "" || m.Output == "" || len(m.Weights) == 0 || len(m.Bias) != len(m.Weights[0]) {
		return nil, fmt.Errorf("linear model.json: needs input, output, weights in×out and bias of out")
	}
	for i, row := range m.Weights {
		if len(row) != len(m.Bias) {
			return nil, fmt.Errorf("linear model.json: weights row %d has %d columns, bias %d", i, len(row), len(m.Bias))
		}
	}
	return &m, nil
}

func (m *linearModel) Infer(_ context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	var in *oip.Tensor
	for i := range req.Inputs {
		if req.Inputs[i].Name == m.Input {
			in = &req.Inputs[i]
		}
	}
	if in == nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "input %s is missing", m.Input)
	}
	xs, err := in.Float32s()
	if err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "input %s: %v", m.Input, err)
	}
	width := len(m.Weights)
	if len(in.Shape) != 2 || in.Shape[1] != int64(width) {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "input %s: shape %v, want [batch %d]", m.Input, in.Shape, width)
	}
	rows, outW := len(xs)/width, len(m.Bias)
	ys := make([]float32, rows*outW)
	for r := range rows {
		for o := range outW {
			acc := m.Bias[o]
			for i := range width {
				acc += xs[r*width+i] * m.Weights[i][o]
			}
			ys[r*outW+o] = acc
		}
	}
	return &oip.InferResponse{Outputs: []oip.Tensor{oip.NewFP32(m.Output, []int64{int64(rows), int64(outW)}, ys)}}, nil
}

func (m *linearModel) Close() error { return nil }

// LinearSignature reads a linear model.json's signature: its input
// [-1, in] and its output [-1, out], both FP32.
func LinearSignature(path string) ([]spec.TensorSpec, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var m linearModel
	if json.Unmarshal(b, &m) != nil || m.Input == "" || m.Output == "" || len(m.Weights) == 0 {
		return nil, false
	}
	return []spec.TensorSpec{
		{Name: m.Input, Datatype: "FP32", Shape: []int64{-1, int64(len(m.Weights))}},
		{Name: m.Output, Datatype: "FP32", Shape: []int64{-1, int64(len(m.Bias))}},
	}, true
}
