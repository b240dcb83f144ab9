package controller

import (
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
)

func oipResponse(t *testing.T, id string, names ...string) []byte {
	t.Helper()
	r := oip.InferResponse{ModelName: "m", ID: id}
	for i, n := range names {
		r.Outputs = append(r.Outputs, oip.Tensor{Name: n, Datatype: "INT32", Shape: []int64{1}, Data: []byte{byte(i + 1), 0, 0, 0}})
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A join of inference responses is one inference request whose inputs
// are their outputs by name; a name from two upstreams fails naming both;
// named after their upstreams, they merge; anything else keeps the JSON
// object.
func TestMergeTensors(t *testing.T) {
	t.Parallel()
	v, ct, ok, err := mergeTensors([]replicas.JoinInput{
		{From: "Detector", Value: oipResponse(t, "r1", "boxes", "scores"), ContentType: oip.ContentType},
		{From: "Embedder", Value: oipResponse(t, "r1", "embedding"), ContentType: oip.ContentType},
	}, false)
	if err != nil || !ok || ct != oip.ContentType {
		t.Fatalf("merge: %v %v %q", ok, err, ct)
	}
	var req oip.InferRequest
	if err := req.UnmarshalBinary(v); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range req.Inputs {
		names = append(names, in.Name)
	}
	if strings.Join(names, ",") != "boxes,scores,embedding" || req.ID != "r1" || req.Inputs[1].Data[0] != 2 {
		t.Fatalf("merged request %+v", req)
	}
	clash := []replicas.JoinInput{
		{From: "A", Value: oipResponse(t, "", "x"), ContentType: oip.ContentType},
		{From: "B", Value: oipResponse(t, "", "y", "x"), ContentType: oip.ContentType},
	}
	_, _, _, err = mergeTensors(clash, false)
	if err == nil || !strings.Contains(err.Error(), `tensor "x" comes from both A and B`) || !strings.Contains(err.Error(), "join.tensors: prefix") {
		t.Fatalf("a clash: %v", err)
	}
	// Named after their upstreams, the same tensors merge.
	v, _, ok, err = tensorMerge(&spec.Join{Tensors: spec.JoinTensorsPrefix})(clash)
	if err != nil || !ok {
		t.Fatalf("prefixed merge: %v %v", ok, err)
	}
	req = oip.InferRequest{}
	if err := req.UnmarshalBinary(v); err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, in := range req.Inputs {
		names = append(names, in.Name)
	}
	if strings.Join(names, ",") != "A.x,B.y,B.x" {
		t.Fatalf("prefixed names %v", names)
	}
	if _, _, ok, err := tensorMerge(nil)([]replicas.JoinInput{{From: "A", Value: []byte("1"), ContentType: "application/json"}}); ok || err != nil {
		t.Fatalf("JSON inputs merged: %v %v", ok, err)
	}
}
