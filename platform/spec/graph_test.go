package spec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// graphHead starts the specs of the dataflow tests: lines 1-4.
const graphHead = `name: g
route_prefix: /g
ingress: In
deployments:
`

func parseOne(t *testing.T, yaml string) *App {
	t.Helper()
	apps, err := Parse("g.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return apps[0]
}

// errorLines returns the Errors of err one per item.
func errorLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T, want Errors: %v", err, err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

// The dataflow rules, each refusal with its place and its words.
func TestCheckGraph(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"the measured diamond: fan-out to two answers, fan-in without a join", graphHead + `  - {name: In, kind: cel}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Times10, handler: Multiplier, args: [10]}
  - {name: Final, handler: Adder, args: [1000]}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
`, []string{
			"g.yaml:8:5: deployments[3]: deployment Final has 2 incoming dataflow edges (edges[2] from Plus1, edges[3] from Times10) and no join: it would run once per arriving input and answer once per branch; " +
				"write join: {type: inner} on Final to get one input per request, an object keyed by upstream name (outer: what arrives within the window, the rest null; any: the first), or feed it from one deployment only",
		}},
		{"fan-out to two answers", graphHead + `  - {name: In, kind: cel}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Times10, handler: Multiplier, args: [10]}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
`, []string{
			"g.yaml:5:5: deployments[0].routing: In (routing all) sends each output down edges[0] (to Plus1) and edges[1] (to Times10), which answer from Plus1 and Times10: " +
				"a sync caller gets one answer per request, so it would get one of them and the others would be dropped; gather them with a join on a deployment both branches reach, " +
				"choose one with routing: first (or conditions on both edges), or mark mirror: true on the edges whose answers must not reach the caller",
		}},
		{"fan-out with routing all written, one branch conditional", graphHead + `  - name: In
    kind: cel
    routing: all
  - {name: A}
  - {name: B}
edges:
  - {from: In, to: A}
  - {from: In, to: B, when: 'body.x == 1'}
`, []string{
			"g.yaml:7:14: deployments[0].routing: In (routing all) sends each output down edges[0] (to A) and edges[1] (to B), which answer from A and B: " +
				"a sync caller gets one answer per request, so it would get one of them and the others would be dropped; gather them with a join on a deployment both branches reach, " +
				"choose one with routing: first (or conditions on both edges), or mark mirror: true on the edges whose answers must not reach the caller",
		}},
		{"fan-out deeper down, under a first", graphHead + `  - {name: In, kind: cel, routing: first}
  - {name: A, kind: cel}
  - {name: B}
  - {name: C}
edges:
  - {from: In, to: A}
  - {from: A, to: B}
  - {from: A, to: C}
`, []string{
			"g.yaml:6:5: deployments[1].routing: A (routing all) sends each output down edges[1] (to B) and edges[2] (to C), which answer from B and C: " +
				"a sync caller gets one answer per request, so it would get one of them and the others would be dropped; gather them with a join on a deployment both branches reach, " +
				"choose one with routing: first (or conditions on both edges), or mark mirror: true on the edges whose answers must not reach the caller",
		}},
		{"a branch that answers beside its join", graphHead + `  - {name: In, kind: cel}
  - {name: A, kind: cel, routing: first}
  - {name: B}
  - {name: J, join: {type: any}}
  - {name: X}
edges:
  - {from: In, to: A}
  - {from: In, to: B}
  - {from: A, to: X, when: 'body == 1'}
  - {from: A, to: J}
  - {from: B, to: J}
`, []string{
			"g.yaml:5:5: deployments[0].routing: In (routing all) sends each output down edges[0] (to A) and edges[1] (to B), which answer from J and X: " +
				"a sync caller gets one answer per request, so it would get one of them and the others would be dropped; gather them with a join on a deployment both branches reach, " +
				"choose one with routing: first (or conditions on both edges), or mark mirror: true on the edges whose answers must not reach the caller",
		}},
		{"shadowed branches", graphHead + `  - {name: In, kind: cel, routing: first}
  - {name: A}
  - {name: B}
  - {name: C}
edges:
  - {from: In, to: A}
  - {from: In, to: B, when: 'body.x == 1'}
  - {from: In, to: C}
`, []string{
			"g.yaml:11:5: edges[1]: edge In -> B is never taken: under routing first, edges[0] (to A) has no when and takes every output of In; move the default branch last, or give it a when",
			"g.yaml:12:5: edges[2]: edge In -> C is never taken: under routing first, edges[0] (to A) has no when and takes every output of In; move the default branch last, or give it a when",
		}},
		{"a join with one input", graphHead + `  - {name: In}
  - name: A
    join: {type: inner}
edges:
  - {from: In, to: A}
`, []string{
			"g.yaml:7:11: deployments[1].join: a join combines two or more incoming dataflow edges; A has 1 (edges[0] from In): remove the join",
		}},
		{"triggers that are not inputs", graphHead + `  - {name: In, kind: cel}
  - {name: A}
  - {name: B}
  - name: J
    join: {trigger: [A, In, A]}
edges:
  - {from: In, to: A}
  - {from: In, to: B}
  - {from: A, to: J}
  - {from: B, to: J}
`, []string{
			`g.yaml:9:25: deployments[3].join.trigger[1]: "In" is not an input of J's join: a trigger names the source of one of its incoming edges (A, B)`,
			`g.yaml:9:29: deployments[3].join.trigger[2]: duplicate trigger "A"`,
		}},
		{"mirror on the only path to an answer", graphHead + `  - {name: In, kind: cel}
  - {name: Old}
  - {name: New}
edges:
  - {from: In, to: Old, mirror: true}
  - {from: In, to: New, mirror: true}
`, []string{
			"g.yaml:9:33: edges[0].mirror: mirror on the only path to an answer: every edge out of In is a mirror and In runs no code (kind cel), so the caller would get its transform of the input " +
				"while the answers of Old are dropped; drop mirror: true on the branch whose answer the caller gets",
			"g.yaml:10:33: edges[1].mirror: mirror on the only path to an answer: every edge out of In is a mirror and In runs no code (kind cel), so the caller would get its transform of the input " +
				"while the answers of New are dropped; drop mirror: true on the branch whose answer the caller gets",
		}},
		{"a mirrored branch flowing back", graphHead + `  - {name: In, kind: cel}
  - {name: Live}
  - {name: Shadow}
  - {name: J, join: {type: outer}}
edges:
  - {from: In, to: Live}
  - {from: In, to: Shadow, mirror: true}
  - {from: Live, to: J}
  - {from: Shadow, to: J}
`, []string{
			"g.yaml:13:5: edges[3]: a mirrored branch flows into J, whose answers reach the caller: a mirror's answers never do; end the mirrored branch apart",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := errorLines(t, parseOne(t, tc.yaml).CheckGraph())
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// What the rules let through.
func TestCheckGraphAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml string }{
		{"a chain", graphHead + "  - {name: In}\n  - {name: A}\nedges:\n  - {from: In, to: A}\n"},
		{"the diamond with a join", graphHead + `  - {name: In, kind: cel}
  - {name: Plus1}
  - {name: Times10}
  - {name: Final, join: {type: inner, window: 2s}}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
`},
		{"routing first with the default last", graphHead + `  - {name: In, kind: cel, routing: first}
  - {name: A}
  - {name: B}
edges:
  - {from: In, to: A, when: 'body.x == 1'}
  - {from: In, to: B}
`},
		{"fan-out on conditions (exclusive by the author)", graphHead + `  - {name: In, kind: cel}
  - {name: A}
  - {name: B}
edges:
  - {from: In, to: A, when: 'body.x == 1'}
  - {from: In, to: B, when: 'body.x == 2'}
`},
		{"a shadow beside the answer, a mirror after a default", graphHead + `  - {name: In, kind: cel, routing: first}
  - {name: Old}
  - {name: New}
  - {name: Log}
edges:
  - {from: In, to: Old}
  - {from: In, to: New, mirror: true}
  - {from: Old, to: Log, mirror: true}
`},
		{"a mirror on a split takes no weight", graphHead + `  - {name: In, kind: cel, routing: split}
  - {name: A}
  - {name: B}
  - {name: S}
edges:
  - {from: In, to: A, weight: 1}
  - {from: In, to: B, weight: 1}
  - {from: In, to: S, mirror: true, when: 'body.x == 1'}
`},
		{"fan-out into one join", graphHead + `  - {name: In, kind: cel}
  - {name: A}
  - {name: B}
  - {name: C}
  - {name: J, join: {type: outer, trigger: [A]}}
  - {name: K}
edges:
  - {from: In, to: A}
  - {from: In, to: B}
  - {from: In, to: C}
  - {from: A, to: J}
  - {from: B, to: J}
  - {from: C, to: J}
  - {from: J, to: K}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := parseOne(t, tc.yaml).CheckGraph(); err != nil {
				t.Errorf("CheckGraph: %v", err)
			}
		})
	}
}

// An app built in Go has the field paths, without places.
func TestCheckGraphBuiltInGo(t *testing.T) {
	t.Parallel()
	a := &App{Name: "g", RoutePrefix: "/g", Ingress: "In",
		Deployments: []Deployment{{Name: "In"}, {Name: "A"}, {Name: "B"}, {Name: "J"}},
		Edges:       []Edge{{From: "In", To: "A"}, {From: "In", To: "B"}, {From: "A", To: "J"}, {From: "B", To: "J"}}}
	a.Default()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	got := errorLines(t, a.CheckGraph())
	if len(got) != 1 || !strings.HasPrefix(got[0], "deployments[3]: deployment J has 2 incoming dataflow edges") {
		t.Fatalf("got %q", got)
	}
	a.Deployments[3].Join = &Join{}
	a.Default()
	if j := a.Deployments[3].Join; j.Type != JoinInner || j.Window != DefaultJoinWindow {
		t.Fatalf("defaults: %+v", j)
	}
	if err := a.CheckGraph(); err != nil {
		t.Fatal(err)
	}
	a.Edges = append(a.Edges, Edge{From: "J", To: "A"}) // a cycle: Validate's to report
	if err := a.CheckGraph(); err != nil {
		t.Fatalf("on a cycle: %v", err)
	}
}

// The join's own fields are spec rules: Parse refuses them.
func TestJoinFields(t *testing.T) {
	t.Parallel()
	spec := func(join string) string {
		return graphHead + "  - {name: In, kind: cel}\n  - {name: A}\n  - {name: B}\n  - name: J\n    join: " + join + "\nedges:\n  - {from: In, to: A}\n  - {from: In, to: B}\n  - {from: A, to: J}\n  - {from: B, to: J}\n"
	}
	for _, tc := range []struct{ join, want string }{
		{"{type: left}", `g.yaml:9:18: deployments[3].join.type: unknown join type "left": use "inner" (every input), "outer" (what arrives within the window, the rest null) or "any" (the first)`},
		{"{window: 0s}", "g.yaml:9:20: deployments[3].join.window: must be > 0, got 0s: how long a request's inputs are awaited"},
		{"{window: -1s}", "g.yaml:9:20: deployments[3].join.window: must be > 0, got -1s: how long a request's inputs are awaited"},
		{"{window: 1m}", "g.yaml:9:20: deployments[3].join.window: 1m0s is longer than request_timeout 30s: a sync caller would give up first"},
		{"{windw: 1s}", `g.yaml:9:12: deployments[3].join.windw: unknown field "windw" (did you mean "window"?)`},
		{"{trigger: A}", `g.yaml:9:21: deployments[3].join.trigger: must be a list, got string "A"`},
		{"[inner]", "g.yaml:9:11: deployments[3].join: must be a mapping, got a list"},
	} {
		t.Run(tc.join, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("g.yaml", []byte(spec(tc.join)))
			if got := strings.Join(errorLines(t, err), "\n"); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	a := parseOne(t, spec("{type: outer, window: 250ms, trigger: [B]}"))
	want := Join{Type: JoinOuter, Window: Duration(250 * time.Millisecond), Trigger: []string{"B"}}
	if j := a.Deployments[3].Join; j == nil || !equalJoin(j, &want) {
		t.Fatalf("parsed %+v, want %+v", j, want)
	}
	if j := parseOne(t, spec("{}")).Deployments[3].Join; j == nil || j.Type != JoinInner || j.Window != DefaultJoinWindow {
		t.Fatalf("join: {} gave %+v, want inner within %v", j, DefaultJoinWindow)
	}
	if j := parseOne(t, spec("null")).Deployments[3].Join; j != nil {
		t.Fatalf("join: null gave %+v, want none", j)
	}
}

// A mirror's own rules: it has no weight.
func TestMirrorFields(t *testing.T) {
	t.Parallel()
	_, err := Parse("g.yaml", []byte(graphHead+"  - {name: In, kind: cel, routing: split}\n  - {name: A}\n  - {name: S}\nedges:\n  - {from: In, to: A, weight: 1}\n  - {from: In, to: S, mirror: true, weight: 1}\n  - {from: S, to: A, mirror: yes}\n"))
	want := []string{
		"g.yaml:10:45: edges[1].weight: a mirror stands outside In's routing and takes every output its when lets through: it has no weight",
		`g.yaml:11:30: edges[2].mirror: must be a boolean (true or false), got string "yes"`,
	}
	if got := errorLines(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Joins and mirrors travel in the stored JSON, count in Equal and are
// deep-copied by Clone.
func TestJoinMirrorJSON(t *testing.T) {
	t.Parallel()
	a := parseOne(t, graphHead+`  - {name: In, kind: cel}
  - {name: A}
  - {name: B}
  - {name: J, join: {type: any, window: 1s, trigger: [A, B]}}
  - {name: S}
edges:
  - {from: In, to: A}
  - {from: In, to: B}
  - {from: A, to: J}
  - {from: B, to: J}
  - {from: In, to: S, mirror: true}
`)
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"join":{"type":"any","window":"1s","trigger":["A","B"]}`, `{"from":"In","to":"S","mirror":true}`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("JSON lacks %s:\n%s", w, b)
		}
	}
	if strings.Count(string(b), `"join"`) != 1 || strings.Count(string(b), `"mirror"`) != 1 {
		t.Errorf("join or mirror written where unset:\n%s", b)
	}
	var back App
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !Equal(a, &back) {
		t.Fatalf("round trip differs:\n%s", b)
	}
	back.Default()
	if !Equal(a, &back) || back.Validate() != nil || back.CheckGraph() != nil {
		t.Fatalf("the app read back changed or fails: %v %v", back.Validate(), back.CheckGraph())
	}
	c := a.Clone()
	c.Deployments[3].Join.Trigger[0] = "B"
	c.Deployments[3].Join.Window = 0
	if a.Deployments[3].Join.Trigger[0] != "A" || a.Deployments[3].Join.Window == 0 {
		t.Fatal("Clone shares the join")
	}
	for name, change := range map[string]func(*App){
		"join type":    func(x *App) { x.Deployments[3].Join.Type = JoinInner },
		"join window":  func(x *App) { x.Deployments[3].Join.Window = 2 * x.Deployments[3].Join.Window },
		"join trigger": func(x *App) { x.Deployments[3].Join.Trigger = x.Deployments[3].Join.Trigger[:1] },
		"no join":      func(x *App) { x.Deployments[3].Join = nil },
		"mirror":       func(x *App) { x.Edges[4].Mirror = false },
	} {
		x := a.Clone()
		change(x)
		if Equal(a, x) {
			t.Errorf("%s: Equal ignores it", name)
		}
	}
}

// Joins and mirrors are served by Go replicas; the Python replica's
// are refused at deploy with their place.
func TestNotServed(t *testing.T) {
	t.Parallel()
	a := parseOne(t, graphHead+`  - {name: In, kind: cel}
  - {name: A}
  - {name: B}
  - {name: J, join: {type: inner}}
  - {name: S}
edges:
  - {from: In, to: A}
  - {from: In, to: B}
  - {from: A, to: J}
  - {from: B, to: J}
  - {from: J, to: S, mirror: true}
`)
	if err := a.CheckGraph(); err != nil {
		t.Fatal(err)
	}
	if err := a.NotServed(); err != nil {
		t.Fatalf("joins and mirrors of Go deployments: %v", err)
	}
	py := &BundlePin{Name: "shop", Version: "3", Format: "python-project"}
	a.Deployments[3].Bundle, a.Deployments[4].Bundle = py, py
	want := []string{
		"g.yaml:8:21: deployments[3].join: J runs Python code (bundle shop), and the Python replica does not join inputs yet: it would run once per arriving input; run the join in a Go deployment or a kind: cel one",
		"g.yaml:15:30: edges[4].mirror: S runs Python code (bundle shop), and the Python replica does not drop a mirrored copy's answers yet: they would reach the output topic; mirror to a Go deployment",
		"g.yaml:15:30: edges[4].mirror: J runs Python code (bundle shop), and the Python replica does not route its outputs by rules yet: an edge out of it with mirror needs a kind: cel deployment between them",
	}
	if got := errorLines(t, a.NotServed()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	a.Deployments[3].Bundle, a.Deployments[4].Bundle = nil, nil
	a.Delivery = DeliveryExactlyOnce
	if err := a.NotServed(); err != nil {
		t.Errorf("a join under exactly-once delivery: %v", err)
	}
}

// A Python deployment neither keeps a partition's order nor routes its
// outputs by rules: ordered, a routing other than all, and when or
// transform on an edge out of it are refused at deploy with their place;
// the same graph of Go deployments is served.
func TestNotServedPythonRules(t *testing.T) {
	t.Parallel()
	a := parseOne(t, graphHead+`  - {name: In, kind: cel}
  - {name: P, ordered: true, routing: first}
  - {name: A}
  - {name: B}
edges:
  - {from: In, to: P}
  - {from: P, to: A, when: 'body.x > 1', transform: 'body'}
  - {from: P, to: B}
`)
	if err := a.CheckGraph(); err != nil {
		t.Fatal(err)
	}
	if err := a.NotServed(); err != nil {
		t.Fatalf("rules of Go deployments: %v", err)
	}
	a.Deployments[1].Bundle = &BundlePin{Name: "shop", Version: "3", Format: "python-project"}
	got := strings.Join(errorLines(t, a.NotServed()), "\n")
	for _, want := range []string{
		"deployments[1].ordered: P runs Python code (bundle shop), and the Python replica does not keep a partition's order yet",
		"deployments[1].routing: P runs Python code (bundle shop), and the Python replica does not route its outputs by rules yet: routing first",
		"edges[1].when: P runs Python code (bundle shop), and the Python replica does not route its outputs by rules yet: an edge out of it with when",
		"edges[1].transform: P runs Python code (bundle shop), and the Python replica does not route its outputs by rules yet: an edge out of it with transform",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 4 {
		t.Errorf("%d refusals, want 4:\n%s", n, got)
	}
	if !strings.Contains(got, "g.yaml:") {
		t.Errorf("refusals without their place:\n%s", got)
	}
}
