package controller

import (
	"fmt"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
)

// tensorMerge is the merge of a join that names tensors as j says.
func tensorMerge(j *spec.Join) func([]replicas.JoinInput) ([]byte, string, bool, error) {
	prefixed := j.Prefixed()
	return func(ins []replicas.JoinInput) ([]byte, string, bool, error) { return mergeTensors(ins, prefixed) }
}

// mergeTensors is a join's merge of Open Inference Protocol inputs: when
// every input that came is an OIP payload (the upstreams' inference
// responses, or requests), the joined input is one inference request
// whose input tensors are theirs, in upstream-name order: by their own
// names, two of one name failing the request naming both upstreams, or
// prefixed, each named "<upstream>.<name>". Any other input leaves the
// join's JSON object.
func mergeTensors(ins []replicas.JoinInput, prefixed bool) ([]byte, string, bool, error) {
	for _, in := range ins {
		if in.ContentType != oip.ContentType {
			return nil, "", false, nil
		}
	}
	var req oip.InferRequest
	from := map[string]string{}
	for _, in := range ins {
		ts, id, err := tensorsOf(in.Value)
		if err != nil {
			return nil, "", false, fmt.Errorf("the inference payload from %s: %w", in.From, err)
		}
		for _, t := range ts {
			if prefixed {
				t.Name = in.From + "." + t.Name
			}
			if f, dup := from[t.Name]; dup {
				return nil, "", false, fmt.Errorf("tensor %q comes from both %s and %s: a joined inference request takes each name once; set join.tensors: %s, or rename the output of one", t.Name, f, in.From, spec.JoinTensorsPrefix)
			}
			from[t.Name] = in.From
			req.Inputs = append(req.Inputs, t)
		}
		if req.ID == "" {
			req.ID = id
		}
	}
	b, err := req.MarshalBinary()
	if err != nil {
		return nil, "", false, err
	}
	return b, oip.ContentType, true, nil
}

// tensorsOf reads an OIP payload's tensors: a response's outputs, or a
// request's inputs.
func tensorsOf(v []byte) ([]oip.Tensor, string, error) {
	var resp oip.InferResponse
	if err := resp.UnmarshalBinary(v); err == nil && len(resp.Outputs) > 0 {
		return resp.Outputs, resp.ID, nil
	}
	var req oip.InferRequest
	if err := req.UnmarshalBinary(v); err != nil {
		return nil, "", err
	}
	return req.Inputs, req.ID, nil
}
