package tensorflow

import (
	"context"
	"errors"
	"sort"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/streams"
)

// Format is the artifact format this runtime loads: a SavedModel directory.
const Format = "tensorflow-savedmodel"

// Runtime loads SavedModels for the model server (models.Runtime).
type Runtime struct{}

// Load loads the SavedModel in dir. In a build without the `tensorflow`
// tag it fails with ErrNotBuilt, as a failed precondition.
func (Runtime) Load(_ context.Context, dir string, _ *registry.Version) (models.Loaded, error) {
	m, err := Load(dir)
	if errors.Is(err, ErrNotBuilt) {
		return nil, &streams.Error{Code: streams.CodeFailedPrecondition, Msg: err.Error(), Err: err}
	}
	if err != nil {
		return nil, err
	}
	return &loaded{m: m, size: models.DirSize(dir)}, nil
}

type loaded struct {
	m    *Model
	size int64
}

// Infer maps OIP tensors to the model's inputs and its outputs back, in
// the order the request asks for them (else the signature's order).
func (l *loaded) Infer(_ context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	ins := make(map[string]Input, len(req.Inputs))
	for _, t := range req.Inputs {
		ins[t.Name] = Input{Datatype: string(t.Datatype), Shape: t.Shape, Data: t.Data}
	}
	outs, err := l.m.Infer(ins)
	if err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "%v", err)
	}
	var names []string
	for _, o := range req.Outputs {
		if _, ok := outs[o.Name]; !ok {
			return nil, streams.Errorf(streams.CodeInvalidArgument, "requested output %s is not an output of the model", o.Name)
		}
		names = append(names, o.Name)
	}
	if len(names) == 0 {
		for _, s := range l.m.Outputs() {
			names = append(names, s.Name)
		}
		if len(names) == 0 {
			for n := range outs {
				names = append(names, n)
			}
			sort.Strings(names)
		}
	}
	resp := &oip.InferResponse{}
	for _, n := range names {
		o := outs[n]
		resp.Outputs = append(resp.Outputs, oip.Tensor{Name: n, Datatype: oip.Datatype(o.Datatype), Shape: o.Shape, Data: o.Data})
	}
	return resp, nil
}

func (l *loaded) Close() error { return l.m.Close() }

// MemoryBytes counts the SavedModel's size on disk: its variables are
// what the session holds.
func (l *loaded) MemoryBytes() int64 { return l.size }
