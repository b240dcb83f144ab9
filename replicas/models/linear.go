package models

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
)

// LinearFormat is the artifact format of the linear runtime: a model.json
// holding {"input": "x", "output": "y", "weights": [[...]], "bias": [...]},
// or, for large weights, {"input", "output", "in": N, "weights_file":
// "weights.bin", "bias"} with the N×len(bias) weights as little-endian
// float32 in row-major order in weights.bin.
const LinearFormat = "sluice-linear"

// Linear computes y = xW + b over FP32 rows. It needs no native library,
// so it serves in every build, and it is the runtime of the tests and the
// multiplexing and cold-start benchmarks.
type Linear struct{}

type linearFile struct {
	Input       string      `json:"input"`
	Output      string      `json:"output"`
	Weights     [][]float32 `json:"weights,omitempty"` // in × out
	In          int         `json:"in,omitempty"`      // rows of weights_file
	WeightsFile string      `json:"weights_file,omitempty"`
	Bias        []float32   `json:"bias"` // out
}

type linearModel struct {
	input, output string
	in            int
	w             []float32 // in × out, row-major
	bias          []float32
}

// Load reads model.json (and its weights file).
func (Linear) Load(_ context.Context, dir string, _ *registry.Version) (Loaded, error) {
	f, err := readLinear(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, err
	}
	out := len(f.Bias)
	m := &linearModel{input: f.Input, output: f.Output, bias: f.Bias}
	switch {
	case f.WeightsFile != "":
		if f.In <= 0 || out == 0 {
			return nil, fmt.Errorf("linear model.json: weights_file needs in > 0 and a bias")
		}
		if err := localPath(f.WeightsFile); err != nil {
			return nil, fmt.Errorf("linear model.json: weights_file: %w", err)
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.WeightsFile)))
		if err != nil {
			return nil, fmt.Errorf("linear model: %w", err)
		}
		if len(b) != f.In*out*4 {
			return nil, fmt.Errorf("linear model: %s has %d bytes, want in %d × out %d × 4", f.WeightsFile, len(b), f.In, out)
		}
		m.in, m.w = f.In, make([]float32, f.In*out)
		for i := range m.w {
			m.w[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	default:
		if len(f.Weights) == 0 || out == 0 {
			return nil, fmt.Errorf("linear model.json: needs weights in×out (or weights_file) and bias of out")
		}
		m.in, m.w = len(f.Weights), make([]float32, 0, len(f.Weights)*out)
		for i, row := range f.Weights {
			if len(row) != out {
				return nil, fmt.Errorf("linear model.json: weights row %d has %d columns, bias %d", i, len(row), out)
			}
			m.w = append(m.w, row...)
		}
	}
	return m, nil
}

func readLinear(path string) (*linearFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("linear model: %w", err)
	}
	var f linearFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("linear model.json: %w", err)
	}
	if f.Input == "" || f.Output == "" {
		return nil, fmt.Errorf("linear model.json: needs input and output names")
	}
	return &f, nil
}

// localPath refuses paths that leave the artifact directory.
func localPath(p string) error {
	if filepath.IsAbs(p) || !filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("%q must be a relative path inside the artifact", p)
	}
	return nil
}

// MemoryBytes is the weights' size.
func (m *linearModel) MemoryBytes() int64 { return int64(len(m.w)+len(m.bias)) * 4 }

func (m *linearModel) Infer(_ context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	var in *oip.Tensor
	for i := range req.Inputs {
		if req.Inputs[i].Name == m.input {
			in = &req.Inputs[i]
		}
	}
	if in == nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "input %s is missing", m.input)
	}
	xs, err := in.Float32s()
	if err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "input %s: %v", m.input, err)
	}
	width, outW := m.in, len(m.bias)
	if len(in.Shape) != 2 || in.Shape[1] != int64(width) {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "input %s: shape %v, want [batch %d]", m.input, in.Shape, width)
	}
	rows := len(xs) / width
	ys := make([]float32, rows*outW)
	for r := range rows {
		y := ys[r*outW : (r+1)*outW]
		copy(y, m.bias)
		for i, x := range xs[r*width : (r+1)*width] {
			row := m.w[i*outW : (i+1)*outW]
			for o := range y {
				y[o] += x * row[o]
			}
		}
	}
	return &oip.InferResponse{Outputs: []oip.Tensor{oip.NewFP32(m.output, []int64{int64(rows), int64(outW)}, ys)}}, nil
}

func (m *linearModel) Close() error { return nil }

// LinearSignature reads a linear model.json's signature: its input
// [-1, in] and its output [-1, out], both FP32.
func LinearSignature(path string) ([]spec.TensorSpec, bool) {
	f, err := readLinear(path)
	if err != nil || len(f.Bias) == 0 {
		return nil, false
	}
	in := f.In
	if f.WeightsFile == "" {
		in = len(f.Weights)
	}
	if in == 0 {
		return nil, false
	}
	return []spec.TensorSpec{
		{Name: f.Input, Datatype: "FP32", Shape: []int64{-1, int64(in)}},
		{Name: f.Output, Datatype: "FP32", Shape: []int64{-1, int64(len(f.Bias))}},
	}, true
}
