package spec

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fakeCatalog is a registry's models: each model's output names, labels
// and versions by deployment default.
type fakeCatalog map[string]struct {
	labels  map[string]string
	outputs []string
}

func (c fakeCatalog) ModelsServed(d *Deployment) []string {
	var out []string
	for name, m := range c {
		if d.Model == nil || d.Model.Serves(name, m.labels) {
			out = append(out, name)
		}
	}
	return out
}

func (c fakeCatalog) Outputs(_ *Deployment, model string) ([]string, string, bool) {
	m, ok := c[model]
	if !ok || len(m.outputs) == 0 {
		return nil, "", false
	}
	return m.outputs, "3", true
}

// tensorJoin is a diamond whose upstreams A and B are given (lines 6-7)
// and whose join Final (line 8) has the given join fields.
func tensorJoin(a, b, join string) string {
	return graphHead + `  - {name: In, kind: cel}
  - ` + a + `
  - ` + b + `
  - {name: Final, kind: cel, join: {type: inner` + join + `}}
edges:
  - {from: In, to: A}
  - {from: In, to: B}
  - {from: A, to: Final}
  - {from: B, to: Final}
`
}

// A tensor join whose upstreams are known to answer with one tensor name
// is refused at the join, naming the tensor, both upstreams and what to
// write; prefix, or names that differ, pass.
func TestCheckTensorJoins(t *testing.T) {
	t.Parallel()
	const fix = "set join.tensors: prefix on Final (each tensor is then named <upstream>.<name>)"
	cat := fakeCatalog{
		"line":  {labels: map[string]string{"suite": "x"}, outputs: []string{"y"}},
		"boxes": {outputs: []string{"boxes", "y"}},
		"new":   {},
	}
	for _, tc := range []struct {
		name, yaml string
		cat        TensorCatalog
		want       string // "" accepted
	}{
		{"declared outputs clash", tensorJoin(
			`{name: A, handler: Det, outputs: [{name: boxes, datatype: FP32, shape: [-1, 4]}, {name: scores, datatype: FP32, shape: [-1]}]}`,
			`{name: B, handler: Det, outputs: [{name: scores, datatype: FP32, shape: [-1]}]}`, ""), nil,
			`g.yaml:8:36: deployments[3].join: tensor "scores" would come from both A (its declared outputs) and B (its declared outputs), and a joined inference request takes each name once: ` + fix + `, or rename one of them`},
		{"declared outputs apart", tensorJoin(
			`{name: A, handler: Det, outputs: [{name: boxes, datatype: FP32, shape: [-1, 4]}]}`,
			`{name: B, handler: Emb, outputs: [{name: embedding, datatype: FP32, shape: [-1, 512]}]}`, ""), nil, ""},
		{"declared outputs clash, prefixed", tensorJoin(
			`{name: A, handler: Det, outputs: [{name: y, datatype: FP32, shape: [1]}]}`,
			`{name: B, handler: Det, outputs: [{name: y, datatype: FP32, shape: [1]}]}`, ", tensors: prefix"), nil, ""},
		{"outputs unknown: left to run time", tensorJoin(`{name: A, handler: Det}`, `{name: B, handler: Det}`, ""), nil, ""},
		{"two model deployments naming one model, no registry", tensorJoin(
			`{name: A, kind: model, model: {names: [line], default_version: "1"}}`,
			`{name: B, kind: model, model: {names: [line], default_version: "2"}}`, ""), nil,
			`g.yaml:8:36: deployments[3].join: A and B both serve model line, and a request names one model for the whole graph: each would answer with the same outputs, and a joined inference request takes each name once: ` + fix},
		{"two model deployments naming one model, its signature registered", tensorJoin(
			`{name: A, kind: model, model: {names: [line]}}`,
			`{name: B, kind: model, model: {names: [line]}}`, ""), cat,
			`tensor "y" would come from both A (model line version 3) and B (model line version 3)`},
		{"two model deployments naming one model, prefixed", tensorJoin(
			`{name: A, kind: model, model: {names: [line]}}`,
			`{name: B, kind: model, model: {names: [line]}}`, ", tensors: prefix"), cat, ""},
		{"two model deployments of different models", tensorJoin(
			`{name: A, kind: model, model: {names: [line]}}`,
			`{name: B, kind: model, model: {names: [boxes]}}`, ""), cat, ""},
		{"selectors meeting on a registered model", tensorJoin(
			`{name: A, kind: model, model: {selector: {suite: x}}}`,
			`{name: B, kind: model}`, ""), cat,
			`tensor "y" would come from both A (model line version 3) and B (model line version 3)`},
		{"a model deployment beside declared outputs", tensorJoin(
			`{name: A, kind: model, model: {names: [boxes]}}`,
			`{name: B, handler: Det, outputs: [{name: boxes, datatype: FP32, shape: [-1, 4]}]}`, ""), cat,
			`tensor "boxes" would come from both A (model boxes version 3) and B (its declared outputs)`},
		{"a model deployment beside declared outputs, signature unknown", tensorJoin(
			`{name: A, kind: model, model: {names: [new]}}`,
			`{name: B, handler: Det, outputs: [{name: boxes, datatype: FP32, shape: [-1, 4]}]}`, ""), cat, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := parseOne(t, tc.yaml)
			if err := a.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			err := a.CheckTensorJoins(tc.cat)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// outputs: and join.tensors are read, checked, kept in JSON and compared.
func TestTensorJoinFields(t *testing.T) {
	t.Parallel()
	y := tensorJoin(`{name: A, handler: Det, outputs: [{name: y, datatype: FP33, shape: [1]}]}`,
		`{name: B, kind: model, outputs: [{name: y, datatype: FP32, shape: [1]}]}`, ", tensors: rename")
	_, err := Parse("g.yaml", []byte(y))
	got := errorLines(t, err)
	for _, want := range []string{
		`g.yaml:6:59: deployments[1].outputs[0].datatype: unknown datatype "FP33"`,
		`g.yaml:7:37: deployments[2].outputs: a model deployment answers with its models' outputs`,
		`g.yaml:8:59: deployments[3].join.tensors: unknown tensor naming "rename": use "merge" (each tensor under its own name) or "prefix" (named <upstream>.<name>)`,
	} {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, want) }) {
			t.Errorf("missing %s\nin %q", want, got)
		}
	}

	a := parseOne(t, tensorJoin(`{name: A, handler: Det, outputs: [{name: y, datatype: FP32, shape: [-1, 1]}]}`, `{name: B, handler: Det}`, ", tensors: prefix"))
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	b := a.Clone()
	if !Equal(a, b) || !b.Deployments[3].Join.Prefixed() || !reflect.DeepEqual(b.Deployments[1].Outputs, a.Deployments[1].Outputs) {
		t.Fatalf("clone %+v", b.Deployments)
	}
	b.Deployments[1].Outputs[0].Shape[0] = 2
	if Equal(a, b) || a.Deployments[1].Outputs[0].Shape[0] != -1 {
		t.Fatal("a clone's outputs are shared, or not compared")
	}
	b = a.Clone()
	b.Deployments[3].Join.Tensors = JoinTensorsMerge
	if Equal(a, b) {
		t.Fatal("join.tensors not compared")
	}
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	js := string(raw)
	if !strings.Contains(js, `"tensors":"prefix"`) || !strings.Contains(js, `"outputs":[{"name":"y","datatype":"FP32","shape":[-1,1]}]`) {
		t.Fatalf("JSON %s", js)
	}
}
