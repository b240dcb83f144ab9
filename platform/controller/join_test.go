package controller_test

import (
	"os"
	"reflect"
	"testing"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// Revisions of deployments without a join or a mirror are those of
// before they existed: an upgrade of the platform rolls no replica.
func TestRevisionsKeptWithoutJoins(t *testing.T) {
	t.Parallel()
	want := map[string]string{ // computed by the code before joins and mirrors
		"Add10": "460d57dfa368", "Times3": "5db685414519",
		"LanguageClassifier": "29034766aa76", "SpanishResponder": "b3510a49f1b1", "FrenchResponder": "b4caa794a566",
	}
	for _, f := range []string{"../../examples/chain/pipeline.yaml", "../../examples/hello-cel/hello-cel.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		apps, err := spec.Parse(f, data)
		if err != nil {
			t.Fatal(err)
		}
		topo := controller.Compile(streams.Namer{}, apps[0])
		for _, d := range apps[0].Deployments {
			if got := controller.Revision(topo, d); got != want[d.Name] {
				t.Errorf("%s: revision %s, want %s", d.Name, got, want[d.Name])
			}
		}
	}
}

const joinYAML = `name: d
route_prefix: /d
ingress: In
deployments:
  - {name: In, kind: cel}
  - {name: Plus1, kind: cel}
  - {name: Times10, kind: cel}
  - {name: Final, handler: Adder, join: {type: outer, window: 2s, trigger: [Plus1]}}
  - {name: Shadow, kind: cel}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
  - {from: Final, to: Shadow, mirror: true}
`

// Compile keeps a deployment's join with the topics it combines, and a
// mirror on its route; each changes the revisions it concerns.
func TestCompileJoinAndMirror(t *testing.T) {
	t.Parallel()
	apps, err := spec.Parse("d.yaml", []byte(joinYAML))
	if err != nil {
		t.Fatal(err)
	}
	app := apps[0]
	if err := app.CheckGraph(); err != nil {
		t.Fatal(err)
	}
	n := streams.Namer{}
	topo := controller.Compile(n, app)
	final := topo.Deployments["Final"]
	wantJoin := &spec.Join{Type: spec.JoinOuter, Window: spec.Duration(2e9), Trigger: []string{"Plus1"}}
	if !reflect.DeepEqual(final.Join, wantJoin) {
		t.Fatalf("Final's join = %+v, want %+v", final.Join, wantJoin)
	}
	if want := []string{n.Edge("d", "Plus1", "Final"), n.Edge("d", "Times10", "Final")}; !reflect.DeepEqual(final.Inputs, want) {
		t.Fatalf("Final's inputs = %v, want %v", final.Inputs, want)
	}
	if r := final.Routes; len(r) != 1 || !r[0].Mirror || r[0].To != "Shadow" || !final.Ruled() {
		t.Fatalf("Final's routes = %+v (ruled %v), want the mirror to Shadow", r, final.Ruled())
	}
	if topo.Deployments["Plus1"].Join != nil {
		t.Fatal("a join on a deployment that has none")
	}
	app.Deployments[3].Join.Trigger = nil
	if final.Join.Trigger == nil {
		t.Fatal("the topology shares the spec's join")
	}
	before := controller.Revision(topo, app.Deployments[3])
	changed := app.Clone()
	changed.Deployments[3].Join.Type = spec.JoinAny
	if controller.Revision(controller.Compile(n, changed), changed.Deployments[3]) == before {
		t.Fatal("a changed join keeps the revision")
	}
	changed = app.Clone()
	changed.Edges[4].Mirror = false
	if controller.Revision(controller.Compile(n, changed), changed.Deployments[3]) == before {
		t.Fatal("a mirror turned into an edge keeps the revision")
	}
}
