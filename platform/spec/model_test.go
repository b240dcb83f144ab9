package spec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// modelBase is a minimal valid app whose ingress is a model deployment;
// cases append the lines of its deployment so that lines and columns are
// visible.
const modelBase = `name: m
route_prefix: /m
ingress: M
partitions: 4
deployments:
- name: M
  kind: model
`

func TestParseModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       *ModelServing
		maxModels  int
	}{
		{"no model block serves any", modelBase, nil, DefaultModelsPerReplica},
		{"empty model block", modelBase + "  model:\n", &ModelServing{}, DefaultModelsPerReplica},
		{"empty mapping", modelBase + "  model: {}\n", &ModelServing{}, DefaultModelsPerReplica},
		{"names", modelBase + "  model:\n    names: [iris, resnet-50, a.b_c]\n",
			&ModelServing{Names: []string{"iris", "resnet-50", "a.b_c"}}, DefaultModelsPerReplica},
		{"selector", modelBase + "  model:\n    selector: {team: vision, stage: \"1\"}\n",
			&ModelServing{Selector: map[string]string{"team": "vision", "stage": "1"}}, DefaultModelsPerReplica},
		{"empty selector value", modelBase + "  model:\n    selector: {team: ''}\n",
			&ModelServing{Selector: map[string]string{"team": ""}}, DefaultModelsPerReplica},
		{"every field", modelBase + `  max_models_per_replica: 5
  model:
    names: [iris]
    runtime: onnx
    default_version: "@production"
    spread: 4
    memory_budget: 2GiB
    disk_budget: 10G
`, &ModelServing{
			Names: []string{"iris"}, Runtime: "onnx", DefaultVersion: "@production", Spread: 4,
			MemoryBudget: 2 << 30, DiskBudget: 10e9,
		}, 5},
		{"numeric version and byte budgets", modelBase + "  model:\n    default_version: \"3\"\n    memory_budget: 1024\n    disk_budget: 1.5Gi\n",
			&ModelServing{DefaultVersion: "3", MemoryBudget: 1024, DiskBudget: 3 << 29}, DefaultModelsPerReplica},
		{"spread zero is automatic", modelBase + "  model:\n    spread: 0\n", &ModelServing{}, DefaultModelsPerReplica},
		{"explicit zero models per replica stays", modelBase + "  max_models_per_replica: 0\n", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			apps, err := Parse("m.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			d := apps[0].Deployments[0]
			if d.Kind != KindModel {
				t.Errorf("Kind = %q, want %q", d.Kind, KindModel)
			}
			if !equalModelServing(d.Model, tt.want) {
				t.Errorf("Model = %+v, want %+v", d.Model, tt.want)
			}
			if d.MaxModelsPerReplica != tt.maxModels {
				t.Errorf("MaxModelsPerReplica = %d, want %d", d.MaxModelsPerReplica, tt.maxModels)
			}
			if d.Handler != d.Name {
				t.Errorf("Handler = %q, want the name %q", d.Handler, d.Name)
			}
		})
	}
}

// The default of max_models_per_replica is for model deployments only.
func TestModelsPerReplicaDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dep  Deployment
		want int
	}{
		{"handler deployment", Deployment{Name: "A"}, 0},
		{"handler deployment keeps its value", Deployment{Name: "A", MaxModelsPerReplica: 2}, 2},
		{"model deployment", Deployment{Name: "A", Kind: KindModel}, DefaultModelsPerReplica},
		{"model deployment keeps its value", Deployment{Name: "A", Kind: KindModel, MaxModelsPerReplica: 7}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &App{Name: "a", RoutePrefix: "/a", Ingress: "A", Deployments: []Deployment{tt.dep}}
			a.Default()
			if got := a.Deployments[0].MaxModelsPerReplica; got != tt.want {
				t.Errorf("MaxModelsPerReplica = %d, want %d", got, tt.want)
			}
			a.Default()
			if got := a.Deployments[0].MaxModelsPerReplica; got != tt.want {
				t.Errorf("after a second Default: MaxModelsPerReplica = %d, want %d", got, tt.want)
			}
			if err := a.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	// From YAML too: a handler deployment gets no default.
	apps, err := Parse("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if got := apps[0].Deployments[0].MaxModelsPerReplica; got != 0 {
		t.Errorf("handler deployment from YAML: MaxModelsPerReplica = %d, want 0", got)
	}
}

func TestParseModelErrors(t *testing.T) {
	t.Parallel()
	handlerBase := strings.Replace(modelBase, "  kind: model\n", "", 1)
	tests := []struct {
		name, yaml string
		want       []string
	}{
		// kind
		{"unknown kind", strings.Replace(modelBase, "kind: model", "kind: modle", 1),
			[]string{`7:9 deployments[0].kind: unknown kind "modle": leave it out for a handler, or use "model"`}},
		{"kind not a string", strings.Replace(modelBase, "kind: model", "kind: [model]", 1),
			[]string{`7:9 deployments[0].kind: must be a string, got a list`}},
		{"model block without kind", handlerBase + "  model:\n    names: [iris]\n",
			[]string{`8:5 deployments[0].model: is only for deployments of kind "model"`}},
		{"model block on an explicit handler", handlerBase + "  handler: H\n  model: {}\n",
			[]string{`8:10 deployments[0].model: is only for deployments of kind "model"`}},

		// what a model deployment does not take
		{"handler", modelBase + "  handler: H\n",
			[]string{`8:12 deployments[0].handler: a deployment of kind model runs the built-in model server; it takes no handler`}},
		{"args", modelBase + "  args: [1]\n",
			[]string{`8:9 deployments[0].args: a deployment of kind model takes no args`}},
		{"batching", modelBase + "  batching: {max_batch_size: 4}\n",
			[]string{`8:13 deployments[0].batching: a deployment of kind model does not batch requests yet`}},

		// the model block
		{"model not a mapping", modelBase + "  model: iris\n",
			[]string{`8:10 deployments[0].model: must be a mapping, got string "iris"`}},
		{"names and selector", modelBase + "  model:\n    names: [iris]\n    selector: {team: x}\n",
			[]string{`10:15 deployments[0].model.selector: give names or a selector, not both`}},
		{"bad names", modelBase + "  model:\n    names: [ok, a..b, -x]\n",
			[]string{
				`9:17 deployments[0].model.names[1]: model name "a..b": ".." is not allowed`,
				`9:23 deployments[0].model.names[2]: model name "-x": use letters, digits`,
			}},
		{"name with a slash", modelBase + "  model:\n    names: [a/b]\n",
			[]string{`9:13 deployments[0].model.names[0]: model name "a/b": use letters, digits`}},
		{"empty name", modelBase + "  model:\n    names: ['']\n",
			[]string{`9:13 deployments[0].model.names[0]: model name "": must be 1..128 characters`}},
		{"name too long", modelBase + "  model:\n    names: [" + strings.Repeat("x", 129) + "]\n",
			[]string{`9:13 deployments[0].model.names[0]: must be 1..128 characters`}},
		{"duplicate names", modelBase + "  model:\n    names: [a, b, a]\n",
			[]string{`9:19 deployments[0].model.names[2]: duplicate model "a"`}},
		{"names not a list", modelBase + "  model:\n    names: iris\n",
			[]string{`9:12 deployments[0].model.names: must be a list, got string "iris"`}},
		{"name not a string", modelBase + "  model:\n    names: [[a]]\n",
			[]string{`9:13 deployments[0].model.names[0]: must be a string, got a list`}},
		{"negative spread", modelBase + "  model:\n    spread: -1\n",
			[]string{`9:13 deployments[0].model.spread: must be >= 0 (0: automatic), got -1`}},
		{"spread above partitions", modelBase + "  model:\n    spread: 5\n",
			[]string{`9:13 deployments[0].model.spread: spread 5 exceeds partitions 4`}},
		{"spread not an integer", modelBase + "  model:\n    spread: two\n",
			[]string{`9:13 deployments[0].model.spread: must be an integer, got string "two"`}},
		{"negative memory budget", modelBase + "  model:\n    memory_budget: -1\n",
			[]string{`9:20 deployments[0].model.memory_budget: bad size -1: must not be negative`}},
		{"negative disk budget", modelBase + "  model:\n    disk_budget: -1GiB\n",
			[]string{`9:18 deployments[0].model.disk_budget: bad size "-1GiB": must not be negative`}},
		{"budget with a bad unit", modelBase + "  model:\n    memory_budget: 2GiBs\n",
			[]string{`9:20 deployments[0].model.memory_budget: bad size "2GiBs": unknown unit "GiBs"`}},
		{"bad default version", modelBase + "  model:\n    default_version: a/b\n",
			[]string{`9:22 deployments[0].model.default_version: "a/b": use letters, digits`}},
		{"empty alias", modelBase + "  model:\n    default_version: \"@\"\n",
			[]string{`9:22 deployments[0].model.default_version: "@": must be 1..128 characters`}},
		{"default version not a string", modelBase + "  model:\n    default_version: 3\n",
			[]string{`9:22 deployments[0].model.default_version: must be a string, got integer 3 (quote it`}},
		{"selector a list", modelBase + "  model:\n    selector: [team]\n",
			[]string{`9:15 deployments[0].model.selector: must be a mapping of strings, got a list`}},
		{"selector a string", modelBase + "  model:\n    selector: team\n",
			[]string{`9:15 deployments[0].model.selector: must be a mapping of strings, got string "team"`}},
		{"selector value a list", modelBase + "  model:\n    selector: {team: [x]}\n",
			[]string{`9:22 deployments[0].model.selector.team: must be a string, got a list`}},
		{"selector value a number", modelBase + "  model:\n    selector: {gpu: 1}\n",
			[]string{`9:21 deployments[0].model.selector.gpu: must be a string, got integer 1 (quote it`}},
		{"selector duplicate key", modelBase + "  model:\n    selector: {a: x, a: y}\n",
			[]string{`9:22 deployments[0].model.selector.a: duplicate key "a"`}},
		{"selector empty key", modelBase + "  model:\n    selector: {'': x}\n",
			[]string{`9:15 deployments[0].model.selector: a label key must not be empty`}},
		{"unknown key", modelBase + "  model:\n    name: [iris]\n",
			[]string{`9:5 deployments[0].model.name: unknown field "name" (did you mean "names"?)`}},
		{"unknown key with dash", modelBase + "  model:\n    default-version: \"1\"\n",
			[]string{`9:5 deployments[0].model.default-version: unknown field "default-version" (did you mean "default_version"?)`}},
		{"unknown key far from all", modelBase + "  model:\n    replicas: 3\n",
			[]string{`9:5 deployments[0].model.replicas: unknown field "replicas"`}},
		{"duplicate key", modelBase + "  model:\n    spread: 1\n    spread: 2\n",
			[]string{`10:5 deployments[0].model.spread: duplicate key "spread" (first at line 9)`}},

		// several at once, in file order
		{"several", modelBase + "  args: [1]\n  model:\n    names: [a, a]\n    spread: -2\n    memory_budget: 1Gi\n    runtim: onnx\n",
			[]string{
				`8:9 deployments[0].args: a deployment of kind model takes no args`,
				`10:16 deployments[0].model.names[1]: duplicate model "a"`,
				`11:13 deployments[0].model.spread: must be >= 0 (0: automatic), got -2`,
				`13:5 deployments[0].model.runtim: unknown field "runtim" (did you mean "runtime"?)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			apps, err := Parse("m.yaml", []byte(tt.yaml))
			if apps != nil {
				t.Errorf("Parse returned %d apps with its errors", len(apps))
			}
			checkErrors(t, "m.yaml", err, tt.want)
		})
	}
}

// Validate names the field of a Go-built app, which has no positions; the
// negative budgets that YAML cannot express are caught here.
func TestValidateModelGo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(d *Deployment)
		field string // "" for none
		msg   string
	}{
		{"valid", func(*Deployment) {}, "", ""},
		{"negative memory budget", func(d *Deployment) { d.Model.MemoryBudget = -1 }, "deployments[0].model.memory_budget", "must be >= 0, got -1B"},
		{"negative disk budget", func(d *Deployment) { d.Model.DiskBudget = -(1 << 30) }, "deployments[0].model.disk_budget", "must be >= 0, got -1GiB"},
		{"spread above partitions", func(d *Deployment) { d.Model.Spread = 9 }, "deployments[0].model.spread", "spread 9 exceeds partitions 8"},
		{"spread at partitions", func(d *Deployment) { d.Model.Spread = 8 }, "", ""},
		{"model on a handler", func(d *Deployment) { d.Kind = "" }, "deployments[0].model", `is only for deployments of kind "model"`},
		{"unknown kind", func(d *Deployment) { d.Kind = "Model" }, "deployments[0].kind", `unknown kind "Model"`},
		{"handler", func(d *Deployment) { d.Handler = "Other" }, "deployments[0].handler", "takes no handler"},
		{"args", func(d *Deployment) { d.Args = []Arg{{Value: json.RawMessage(`1`)}} }, "deployments[0].args", "takes no args"},
		{"batching", func(d *Deployment) { d.Batching.MaxBatchSize = 2 }, "deployments[0].batching", "does not batch"},
		{"names and selector", func(d *Deployment) { d.Model.Selector = map[string]string{"a": "b"} }, "deployments[0].model.selector", "not both"},
		{"nil model", func(d *Deployment) { d.Model = nil }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &App{Name: "m", RoutePrefix: "/m", Ingress: "M", Deployments: []Deployment{{
				Name: "M", Kind: KindModel, Model: &ModelServing{Names: []string{"iris"}},
			}}}
			a.Default()
			tt.edit(&a.Deployments[0])
			err := a.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("Validate = %v, want one error at %s", err, tt.field)
			}
			e := es[0]
			if e.Field != tt.field || !strings.Contains(e.Msg, tt.msg) || e.Line != 0 || e.File != "" {
				t.Errorf("got %q (line %d), want %s: ...%s...", e, e.Line, tt.field, tt.msg)
			}
		})
	}
}

func TestModelServingServes(t *testing.T) {
	t.Parallel()
	vision := map[string]string{"team": "vision", "stage": "prod"}
	speech := map[string]string{"team": "speech"}
	tests := []struct {
		name    string
		serving *ModelServing
		model   string
		labels  []map[string]string
		want    bool
	}{
		{"nil serves nothing", nil, "iris", nil, false},
		{"nil serves nothing even labelled", nil, "iris", []map[string]string{vision}, false},
		{"empty serves any", &ModelServing{}, "iris", nil, true},
		{"empty serves any labelled", &ModelServing{}, "x", []map[string]string{speech}, true},
		{"named", &ModelServing{Names: []string{"a", "iris"}}, "iris", nil, true},
		{"not named", &ModelServing{Names: []string{"a", "iris"}}, "irises", nil, false},
		{"names ignore labels", &ModelServing{Names: []string{"iris"}}, "iris", []map[string]string{speech}, true},
		{"selector one label", &ModelServing{Selector: map[string]string{"team": "vision"}}, "m", []map[string]string{vision}, true},
		{"selector every label", &ModelServing{Selector: vision}, "m", []map[string]string{vision}, true},
		{"selector value differs", &ModelServing{Selector: map[string]string{"team": "vision"}}, "m", []map[string]string{speech}, false},
		{"selector label missing", &ModelServing{Selector: map[string]string{"owner": "x"}}, "m", []map[string]string{vision}, false},
		{"selector empty value needs the key", &ModelServing{Selector: map[string]string{"owner": ""}}, "m", []map[string]string{vision}, false},
		{"selector empty value", &ModelServing{Selector: map[string]string{"owner": ""}}, "m", []map[string]string{{"owner": ""}}, true},
		{"selector no labels", &ModelServing{Selector: speech}, "m", nil, false},
		{"selector nil label set", &ModelServing{Selector: speech}, "m", []map[string]string{nil}, false},
		{"selector any version", &ModelServing{Selector: speech}, "m", []map[string]string{vision, nil, speech}, true},
		{"selector first version", &ModelServing{Selector: vision}, "m", []map[string]string{vision, speech}, true},
		{"selector not across versions", &ModelServing{Selector: vision}, "m",
			[]map[string]string{{"team": "vision"}, {"stage": "prod"}}, false},
		{"selector superset labels", &ModelServing{Selector: speech}, "m",
			[]map[string]string{{"team": "speech", "extra": "1"}}, true},
		{"names and selector both hold", &ModelServing{Names: []string{"m"}, Selector: speech}, "m", []map[string]string{speech}, true},
		{"names and selector, not named", &ModelServing{Names: []string{"n"}, Selector: speech}, "m", []map[string]string{speech}, false},
		{"names and selector, not selected", &ModelServing{Names: []string{"m"}, Selector: speech}, "m", []map[string]string{vision}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.serving.Serves(tt.model, tt.labels...); got != tt.want {
				t.Errorf("Serves(%q, %v) = %v, want %v", tt.model, tt.labels, got, tt.want)
			}
		})
	}
}

func TestModelServingSpecificity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		serving *ModelServing
		want    int
	}{
		{"any", &ModelServing{}, 0},
		{"any with runtime", &ModelServing{Runtime: "onnx", Spread: 2}, 0},
		{"empty lists are any", &ModelServing{Names: []string{}, Selector: map[string]string{}}, 0},
		{"selector", &ModelServing{Selector: map[string]string{"a": "b"}}, 1},
		{"names", &ModelServing{Names: []string{"iris"}}, 2},
		{"names beat selector", &ModelServing{Names: []string{"iris"}, Selector: map[string]string{"a": "b"}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.serving.Specificity(); got != tt.want {
				t.Errorf("Specificity() = %d, want %d", got, tt.want)
			}
		})
	}
}

// modelApp is a valid Go-built app with a model deployment using every
// field of the model block.
func modelApp() *App {
	a := &App{Name: "m", RoutePrefix: "/m", Ingress: "M", Deployments: []Deployment{
		{Name: "M", Kind: KindModel, Model: &ModelServing{
			Names: []string{"iris", "resnet"}, Runtime: "onnx", DefaultVersion: "@prod",
			Spread: 2, MemoryBudget: 2 << 30, DiskBudget: 10 << 30,
		}},
		{Name: "S", Kind: KindModel, Model: &ModelServing{Selector: map[string]string{"team": "vision"}}},
		{Name: "Any", Kind: KindModel},
	}, Edges: []Edge{{From: "M", To: "S"}, {From: "M", To: "Any"}}}
	a.Default()
	return a
}

func TestCloneModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *App)
	}{
		{"name", func(c *App) { c.Deployments[0].Model.Names[0] = "other" }},
		{"append name", func(c *App) { c.Deployments[0].Model.Names = append(c.Deployments[0].Model.Names, "x") }},
		{"selector value", func(c *App) { c.Deployments[1].Model.Selector["team"] = "speech" }},
		{"selector key", func(c *App) { c.Deployments[1].Model.Selector["stage"] = "prod" }},
		{"delete selector key", func(c *App) { delete(c.Deployments[1].Model.Selector, "team") }},
		{"spread", func(c *App) { c.Deployments[0].Model.Spread = 1 }},
		{"budget", func(c *App) { c.Deployments[0].Model.MemoryBudget = 1 }},
		{"set model of any", func(c *App) { c.Deployments[2].Model = &ModelServing{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			orig := modelApp()
			c := orig.Clone()
			if !Equal(orig, c) {
				t.Fatal("a clone is not Equal to its original")
			}
			tt.mutate(c)
			if Equal(orig, c) {
				t.Error("Equal misses the change to the clone")
			}
			if !Equal(orig, modelApp()) {
				t.Errorf("changing the clone changed the original: %+v", orig.Deployments)
			}
		})
	}
}

func TestEqualModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(a *App)
		equal  bool
	}{
		{"same", func(*App) {}, true},
		{"nil and empty names", func(a *App) { a.Deployments[1].Model.Names = []string{} }, true},
		{"nil and empty selector", func(a *App) { a.Deployments[0].Model.Selector = map[string]string{} }, true},
		{"kind", func(a *App) { a.Deployments[0].Kind = "" }, false},
		{"names order", func(a *App) { a.Deployments[0].Model.Names = []string{"resnet", "iris"} }, false},
		{"fewer names", func(a *App) { a.Deployments[0].Model.Names = []string{"iris"} }, false},
		{"selector value", func(a *App) { a.Deployments[1].Model.Selector = map[string]string{"team": "speech"} }, false},
		{"selector extra key", func(a *App) { a.Deployments[1].Model.Selector["x"] = "y" }, false},
		{"runtime", func(a *App) { a.Deployments[0].Model.Runtime = "tensorflow" }, false},
		{"default version", func(a *App) { a.Deployments[0].Model.DefaultVersion = "@staging" }, false},
		{"spread", func(a *App) { a.Deployments[0].Model.Spread = 0 }, false},
		{"memory budget", func(a *App) { a.Deployments[0].Model.MemoryBudget++ }, false},
		{"disk budget", func(a *App) { a.Deployments[0].Model.DiskBudget = 0 }, false},
		{"nil and empty model", func(a *App) { a.Deployments[2].Model = &ModelServing{} }, false},
		{"model dropped", func(a *App) { a.Deployments[0].Model = nil }, false},
		{"models per replica", func(a *App) { a.Deployments[0].MaxModelsPerReplica = 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := modelApp(), modelApp()
			tt.mutate(b)
			if got := Equal(a, b); got != tt.equal {
				t.Errorf("Equal = %v, want %v", got, tt.equal)
			}
			if got := Equal(b, a); got != tt.equal {
				t.Errorf("Equal reversed = %v, want %v", got, tt.equal)
			}
		})
	}
}

func TestModelJSONRoundTrip(t *testing.T) {
	t.Parallel()
	parsed, err := Parse("m.yaml", []byte(modelBase+`  model:
    selector: {team: vision}
    runtime: onnx
    default_version: "@production"
    spread: 3
    memory_budget: 2GiB
    disk_budget: 1536MiB
- name: N
  kind: model
  max_models_per_replica: 1
  model:
    names: [iris]
- name: Any
  kind: model
edges: [{from: M, to: N}, {from: M, to: Any}]
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tests := []struct {
		name string
		app  *App
		want []string // in the JSON
	}{
		{"parsed", parsed[0], []string{
			`"kind":"model"`, `"selector":{"team":"vision"}`, `"memory_budget":"2GiB"`,
			`"disk_budget":"1536MiB"`, `"spread":3`, `"default_version":"@production"`,
			`"names":["iris"]`, `"max_models_per_replica":1`,
		}},
		{"built in Go", modelApp(), []string{`"names":["iris","resnet"]`, `"memory_budget":"2GiB"`, `"disk_budget":"10GiB"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.app)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("JSON lacks %s:\n%s", w, b)
				}
			}
			var back App
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal: %v\n%s", err, b)
			}
			if !Equal(tt.app, &back) {
				t.Errorf("round trip differs:\n%s\n%+v", b, back.Deployments)
			}
			if back.Deployments[len(back.Deployments)-1].Model != nil {
				t.Error("a model deployment without a model block got one back")
			}
			back.Default()
			if !Equal(tt.app, &back) {
				t.Errorf("Default after the round trip changed the app:\n%+v", back.Deployments)
			}
			if err := back.Validate(); err != nil {
				t.Errorf("Validate after the round trip: %v", err)
			}
		})
	}
}
