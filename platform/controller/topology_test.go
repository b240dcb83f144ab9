package controller_test

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/examples/chain"
	"github.com/sluice-serve/sluice/examples/hello"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// The Bind graph and the YAML graph of an application compile to the same
// topics and groups.
func TestBindAndYAMLCompileAlike(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		app  *serve.Application
	}{
		{"../../examples/hello/hello.yaml", hello.App()},
		{"../../examples/chain/chain.yaml", chain.App()},
	}
	n := streams.Namer{}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			apps, err := spec.Parse(tc.file, data)
			if err != nil {
				t.Fatal(err)
			}
			fromYAML := controller.Compile(n, apps[0])
			fromBind := controller.Compile(n, tc.app.Spec())
			if !reflect.DeepEqual(fromYAML, fromBind) {
				t.Fatalf("topologies differ:\nyaml: %+v\nbind: %+v", fromYAML, fromBind)
			}
		})
	}
}

func TestCompileHello(t *testing.T) {
	t.Parallel()
	topo := controller.Compile(streams.Namer{}, hello.App().Spec())
	want := &controller.Topology{
		Ingress:    "sluice.app.hello.in",
		Output:     "sluice.app.hello.out",
		DeadLetter: "sluice.app.hello.dlq",
		Partitions: 8,
		Edges: []controller.EdgeTopic{
			{From: "LanguageClassifier", To: "FrenchResponder", Topic: "sluice.app.hello.edge.LanguageClassifier.FrenchResponder", Handle: true},
			{From: "LanguageClassifier", To: "SpanishResponder", Topic: "sluice.app.hello.edge.LanguageClassifier.SpanishResponder", Handle: true},
		},
		Deployments: map[string]controller.DeploymentTopics{
			"LanguageClassifier": {Group: "sluice.app.hello.dep.LanguageClassifier", Inputs: []string{"sluice.app.hello.in"}},
			"SpanishResponder":   {Group: "sluice.app.hello.dep.SpanishResponder", Inputs: []string{"sluice.app.hello.edge.LanguageClassifier.SpanishResponder"}},
			"FrenchResponder":    {Group: "sluice.app.hello.dep.FrenchResponder", Inputs: []string{"sluice.app.hello.edge.LanguageClassifier.FrenchResponder"}},
		},
	}
	if !reflect.DeepEqual(topo, want) {
		t.Fatalf("Compile(hello) =\n%+v\nwant\n%+v", topo, want)
	}
	if got := len(topo.Topics()); got != 5 {
		t.Fatalf("hello has %d topics, want 5 (ingress, output, dead letter, two edges)", got)
	}
}

func TestCompilePipelineSuccessors(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../examples/chain/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	apps, err := spec.Parse("pipeline.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	topo := controller.Compile(streams.Namer{}, apps[0])
	edge := "sluice.app.pipeline.edge.Add10.Times3"
	if got := topo.Deployments["Add10"].Successors; !reflect.DeepEqual(got, []string{edge}) {
		t.Fatalf("Add10 successors = %v, want [%s]", got, edge)
	}
	if got := topo.Deployments["Times3"].Inputs; !reflect.DeepEqual(got, []string{edge}) {
		t.Fatalf("Times3 inputs = %v", got)
	}
	if len(topo.Edges) != 1 || topo.Edges[0].Handle {
		t.Fatalf("edges = %+v, want one dataflow edge", topo.Edges)
	}
}

// diamondTwin is the YAML twin of diamondBind.
const diamondTwin = `name: dj
route_prefix: /dj
ingress: Identity
deployments:
  - {name: Identity}
  - {name: Adder, args: [1]}
  - {name: Multiplier, args: [10]}
  - {name: Sum, join: {type: inner, window: 2s}}
edges:
  - {from: Identity, to: Adder}
  - {from: Identity, to: Multiplier}
  - {from: Adder, to: Sum}
  - {from: Multiplier, to: Sum}
`

// diamondBind is a join in the Go SDK: a combine deployment bound to two
// deployments fed by the same input.
func diamondBind(t *testing.T) *serve.Application {
	t.Helper()
	identity := serve.Func("Identity", func(_ context.Context, x int) (int, error) { return x, nil })
	sum := serve.Func("Sum", func(_ context.Context, in struct{ Adder, Multiplier int }) (int, error) {
		return in.Adder + in.Multiplier, nil
	})
	in := identity.Bind()
	plus := chain.AdderDeployment.Bind(1).From(in)
	times := chain.MultiplierDeployment.Bind(10).From(in)
	sum.Bind().From(plus, times).Join(spec.Join{Window: spec.Duration(2 * time.Second)})
	app, err := serve.App("dj", "/dj", in)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// A join written with Bind compiles to the topology of its YAML twin, and
// passes the dataflow checks as the twin does.
func TestBindJoinCompilesLikeYAML(t *testing.T) {
	t.Parallel()
	apps, err := spec.Parse("dj.yaml", []byte(diamondTwin))
	if err != nil {
		t.Fatal(err)
	}
	bind := diamondBind(t).Spec()
	if err := bind.CheckGraph(); err != nil {
		t.Fatalf("the Bind join: %v", err)
	}
	if err := apps[0].CheckGraph(); err != nil {
		t.Fatalf("the YAML join: %v", err)
	}
	n := streams.Namer{}
	fromYAML, fromBind := controller.Compile(n, apps[0]), controller.Compile(n, bind)
	if !reflect.DeepEqual(fromYAML, fromBind) {
		t.Fatalf("topologies differ:\nyaml: %+v\nbind: %+v", fromYAML, fromBind)
	}
	if j := fromBind.Deployments["Sum"].Join; j == nil || j.Type != spec.JoinInner || len(fromBind.Deployments["Sum"].Inputs) != 2 {
		t.Fatalf("Sum compiled to %+v", fromBind.Deployments["Sum"])
	}
	for _, d := range bind.Deployments {
		for _, y := range apps[0].Deployments {
			if y.Name == d.Name {
				if a, b := controller.Revision(fromBind, d), controller.Revision(fromYAML, y); a != b {
					t.Errorf("%s: revision %s from Bind, %s from YAML", d.Name, a, b)
				}
			}
		}
	}
}
