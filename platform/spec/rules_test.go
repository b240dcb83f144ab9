package spec

import (
	"os"
	"strings"
	"testing"
)

const ruled = `name: r
route_prefix: /r
ingress: A
deployments:
- name: A
  kind: cel
  routing: first
- name: B
edges:
- from: A
  to: B
`

func TestRuleErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, want string }{
		{"when not bool", ruled + "  when: 'body.x + 1'\n", "r.yaml:12:9: edges[0].when: line 1, column 8: a condition must be bool, but this rule is int"},
		{"when syntax", ruled + "  when: 'body.x =='\n", "r.yaml:12:9: edges[0].when: line 1, column 10: Syntax error"},
		{"transform syntax", ruled + "  transform: '{'\n", "r.yaml:12:14: edges[0].transform: line 1, column 2: Syntax error"},
		{"weight without split", ruled + "  weight: 3\n", `edges[0].weight: is only for the edges of a deployment with routing "split" (A has "first")`},
		{"split without weight", strings.Replace(ruled, "routing: first", "routing: split", 1), `edges[0].weight: an edge of a split deployment (A) needs a weight > 0, got 0`},
		{"split with when", strings.Replace(ruled, "routing: first", "routing: split", 1) + "  weight: 1\n  when: 'true'\n", "edges[0].when: the edges of a split deployment (A) are chosen by weight"},
		{"unknown routing", strings.Replace(ruled, "routing: first", "routing: any", 1), `deployments[0].routing: unknown routing "any"`},
		{"split key elsewhere", strings.Replace(ruled, "routing: first", "routing: first\n  split_key: request.id", 1), `deployments[0].split_key: is only for routing "split"`},
		{"transform on a handler", strings.Replace(ruled, "- name: B", "- name: B\n  transform: body", 1), `deployments[1].transform: is only for deployments of kind "cel"`},
		{"cel with a handler", strings.Replace(ruled, "kind: cel", "kind: cel\n  handler: X", 1), "deployments[0].handler: a deployment of kind cel runs its rules"},
		{"cel transform", strings.Replace(ruled, "kind: cel", "kind: cel\n  transform: 'body.'", 1), "deployments[0].transform: "},
		{"rule without target", ruled + "rules:\n- {when: 'true'}\n", "rules[0]: a rule needs an app or a version"},
		{"rule not bool", ruled + "rules:\n- {when: '1', app: x}\n", "rules[0].when: "},
		{"rule unknown field", ruled + "rules:\n- {if: 'true', app: x}\n", `rules[0].if: unknown field "if"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("r.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestRulesParse(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../examples/hello-cel/hello-cel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	apps, err := Parse("hello-cel.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	if d := a.Deployments[0]; d.Kind != KindCEL || d.Routing != RouteFirst || d.Transform != `"Please try again."` {
		t.Fatalf("classifier %+v", d)
	}
	if e := a.Edges[1]; e.To != "FrenchResponder" || !strings.Contains(e.When, `"french"`) || e.Transform == "" {
		t.Fatalf("edge %+v", e)
	}
	split, err := Parse("s.yaml", []byte(strings.Replace(ruled, "routing: first", "routing: split\n  split_key: 'request.headers[\"x-user\"]'", 1)+"  weight: 5\nrules:\n- {when: 'request.headers[\"x-beta\"] == \"1\"', app: other, version: \"2\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := split[0].Edges[0]; e.Weight != 5 || split[0].Rules[0].App != "other" || split[0].Rules[0].Version != "2" {
		t.Fatalf("split app %+v", split[0])
	}
}
