package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestInferenceBlock(t *testing.T) {
	t.Parallel()
	const head = "name: m\nroute_prefix: /m\ningress: D\ndeployments:\n  - name: D\ninference:\n"
	tests := []struct {
		name, body, wantErr string
	}{
		{"ok", "  platform: sluice\n  versions: [\"1\", \"2\"]\n  inputs: [{name: X, datatype: FP32, shape: [-1, 3]}]\n", ""},
		{"duplicate version", "  versions: [\"1\", \"1\"]\n", `a.yaml:7:19: inference.versions[1]: duplicate version "1"`},
		{"bad version", "  versions: [\"a/b\"]\n", `inference.versions[0]: version "a/b"`},
		{"unknown datatype", "  inputs: [{name: X, datatype: FP33, shape: [1]}]\n", `a.yaml:7:32: inference.inputs[0].datatype: unknown datatype "FP33"`},
		{"bad dim", "  outputs: [{name: X, datatype: FP32, shape: [-2]}]\n", "inference.outputs[0].shape[0]: dimension -2"},
		{"duplicate tensor", "  inputs: [{name: X, datatype: FP32, shape: [1]}, {name: X, datatype: FP32, shape: [1]}]\n", `duplicate tensor name "X"`},
		{"unknown field", "  signature: 1\n", `inference.signature: unknown field "signature"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			apps, err := Parse("a.yaml", []byte(head+tc.body))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(apps[0])
				var back App
				if err := json.Unmarshal(b, &back); err != nil || !Equal(apps[0], &back) {
					t.Fatalf("JSON round trip: %v\n%s", err, b)
				}
				if !apps[0].Inference.ServesVersion("2") || apps[0].Inference.ServesVersion("3") {
					t.Fatal("ServesVersion")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	var none *Inference
	if !none.ServesVersion("1") || none.ServesVersion("2") || !none.ServesVersion("") {
		t.Fatal("an app without versions serves version 1 only")
	}
}
