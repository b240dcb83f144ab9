package controller_test

import (
	"os"
	"reflect"
	"testing"

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
