package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// The diamond a user measured (a cel node fanning out to Plus1 and
// Times10, both into Final), and its kin, are refused at deploy with exit
// 2, the file:line of the field and what to write instead; nothing runs.
// An unknown handler that the deployment's name stands for points at the
// deployment.
func TestGraphDeployRefusals(t *testing.T) {
	t.Parallel()
	const head = `name: %s
route_prefix: /%s
ingress: In
deployments:
  - {name: In, kind: cel%s}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Times10, handler: Multiplier, args: [10]}
`
	for _, tc := range []struct{ app, routing, rest, want string }{
		{"diamond", "", `  - {name: Final, handler: Adder, args: [1000]}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
`, "diamond.yaml:8:5: deployments[3]: deployment Final has 2 incoming dataflow edges (edges[2] from Plus1, edges[3] from Times10) and no join"},
		{"fanout", "", `edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
`, "fanout.yaml:5:5: deployments[0].routing: In (routing all) sends each output down edges[0] (to Plus1) and edges[1] (to Times10), which answer from Plus1 and Times10"},
		{"shadowed", ", routing: first", `edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10, when: 'body == 2'}
`, "shadowed.yaml:10:5: edges[1]: edge In -> Times10 is never taken: under routing first, edges[0] (to Plus1) has no when"},
		{"unknownhandler", "", `  - {name: Final}
edges:
  - {from: In, to: Plus1}
  - {from: Plus1, to: Times10}
  - {from: Times10, to: Final}
`, `unknownhandler.yaml:8:5: deployments[3].handler: unknown handler "Final"`},
	} {
		t.Run(tc.app, func(t *testing.T) {
			t.Parallel()
			yaml := fmt.Sprintf(head, tc.app, tc.app, tc.routing) + tc.rest
			code, out := run(t, "deploy", "-f", writeFile(t, tc.app+".yaml", yaml))
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, tc.want, out)
			}
			if code, _ := post(t, "/"+tc.app, "5"); code != 404 {
				t.Fatalf("a refused application answers %d, want 404", code)
			}
		})
	}
}
