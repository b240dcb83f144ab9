package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// checkErrors asserts that err is Errors matching want exactly, in order.
// Each want is "line:col field: msg" where msg is a substring of the message.
func checkErrors(t *testing.T, file string, err error, want []string) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got error %v (%T), want Errors", err, err)
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(es), len(want), err)
	}
	for i, w := range want {
		pos, rest, _ := strings.Cut(w, " ")
		field, msg, _ := strings.Cut(rest, ": ")
		e := es[i]
		got := fmt.Sprintf("%d:%d", e.Line, e.Column)
		if e.File != file || got != pos || e.Field != field || !strings.Contains(e.Msg, msg) {
			t.Errorf("error %d:\n got  %s\n want %s:%s %s: ...%s...", i, e, file, pos, field, msg)
		}
	}
}

// base is a minimal valid app; cases below spell out their own YAML so
// that lines and columns are visible.
const base = `name: a
route_prefix: /a
ingress: A
deployments:
- name: A
`

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
	}{
		{"minimal", base},
		{"route root", strings.Replace(base, "/a", "/", 1)},
		{"route v20 is not under v2", strings.Replace(base, "/a", "/v20", 1)},
		{"route sluicey", strings.Replace(base, "/a", "/sluicey/x", 1)},
		{"route all chars", strings.Replace(base, "/a", "/a-b.c_d~e/f", 1)},
		{"name with digits and dash", strings.Replace(base, "name: a", "name: 0-a-9", 1)},
		{"name 63 chars", strings.Replace(base, "name: a", "name: "+strings.Repeat("x", 63), 1)},
		{"whole gpus", base + "  resources: {gpu: 2, gpu_memory: 80GiB}\n"},
		{"fractional gpu", base + "  resources: {gpu: 0.25}\n"},
		{"scale to zero", base + "  replicas: {min: 0, initial: 0, max: 8}\n"},
		{"empty containers", base + "  args:\n  user_config:\n  resources:\n  batching:\nedges:\n"},
		{"aliases", `name: a
route_prefix: /a
ingress: A
deployments:
- name: A
  replicas: &r {min: 1, max: 2}
  user_config: &cfg {k: [1, 2]}
- name: B
  replicas: *r
  user_config: {nested: *cfg}
edges: [{from: A, to: B}]
`},
		{"diamond", `name: a
route_prefix: /a
ingress: A
deployments:
- {name: A, args: [{handle: B}, {handle: C}]}
- {name: B, args: [{handle: D}]}
- {name: C, args: [{handle: D}]}
- {name: D}
`},
		{"trailing document separator", base + "---\n"},
		{"explicit string tag", strings.Replace(base, "name: a", "name: !!str 123", 1)},
		{"delivery exactly once", "delivery: exactly_once\n" + base},
		{"delivery at least once", "delivery: at_least_once\n" + base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			apps, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(apps) != 1 {
				t.Fatalf("got %d apps, want 1", len(apps))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		// name
		{"name underscore", strings.Replace(base, "name: a", "name: my_app", 1),
			[]string{`1:7 name: bad character '_' in "my_app" (position 3)`}},
		{"name dot", strings.Replace(base, "name: a", "name: my.app", 1),
			[]string{`1:7 name: bad character '.' in "my.app"`}},
		{"name leading dash", strings.Replace(base, "name: a", "name: -a", 1),
			[]string{`1:7 name: "-a" must start with a letter or digit`}},
		{"name too long", strings.Replace(base, "name: a", "name: "+strings.Repeat("x", 64), 1),
			[]string{`1:7 name: must be at most 63 characters, got 64`}},
		{"name missing", strings.Replace(base, "name: a\n", "", 1),
			[]string{`1:1 name: is required`}},
		{"name empty", strings.Replace(base, "name: a", `name: ""`, 1),
			[]string{`1:7 name: is required`}},
		{"name not a string", strings.Replace(base, "name: a", "name: 123", 1),
			[]string{`1:7 name: must be a string, got integer 123 (quote it`}},
		{"deployment name bad", strings.Replace(base, "- name: A", "- name: A_1", 1),
			[]string{
				`3:10 ingress: "A" is not a deployment of this app`,
				`5:9 deployments[0].name: bad character '_' in "A_1"`,
			}},
		{"handler bad", base + "  handler: my.handler\n",
			[]string{`6:12 deployments[0].handler: bad character '.' in "my.handler"`}},
		{"handler empty", base + "  handler: ''\n",
			[]string{`6:12 deployments[0].handler: is required`}},

		// route_prefix
		{"route missing", strings.Replace(base, "route_prefix: /a\n", "", 1),
			[]string{`1:1 route_prefix: is required`}},
		{"route no slash", strings.Replace(base, "/a", "a", 1),
			[]string{`2:15 route_prefix: must start with "/", got "a"`}},
		{"route trailing slash", strings.Replace(base, "/a", "/a/", 1),
			[]string{`2:15 route_prefix: must not end with "/"`}},
		{"route double slash", strings.Replace(base, "/a", "/a//b", 1),
			[]string{`2:15 route_prefix: must not contain "//"`}},
		{"route bad char", strings.Replace(base, "/a", "/a?b", 1),
			[]string{`2:15 route_prefix: bad character '?' in "/a?b" (position 3)`}},
		{"route space", strings.Replace(base, "/a", `"/a b"`, 1),
			[]string{`2:15 route_prefix: bad character ' '`}},
		{"route dot dot", strings.Replace(base, "/a", "/a/../b", 1),
			[]string{`2:15 route_prefix: must not contain a ".." segment`}},
		{"route v2", strings.Replace(base, "/a", "/v2", 1),
			[]string{`2:15 route_prefix: "/v2" is reserved`}},
		{"route under v2", strings.Replace(base, "/a", "/v2/models/x", 1),
			[]string{`2:15 route_prefix: "/v2/models/x" is reserved`}},
		{"route sluice", strings.Replace(base, "/a", "/sluice/admin", 1),
			[]string{`2:15 route_prefix: "/sluice/admin" is reserved`}},
		{"route ui", strings.Replace(base, "/a", "/ui", 1),
			[]string{`2:15 route_prefix: "/ui" is reserved`}},
		{"route metrics", strings.Replace(base, "/a", "/metrics/targets", 1),
			[]string{`2:15 route_prefix: "/metrics/targets" is reserved`}},

		// ingress and deployments
		{"ingress missing", strings.Replace(base, "ingress: A\n", "", 1),
			[]string{`1:1 ingress: is required`}},
		{"ingress unknown", strings.Replace(base, "ingress: A", "ingress: B", 1),
			[]string{`3:10 ingress: "B" is not a deployment of this app`}},
		{"no deployments", "name: a\nroute_prefix: /a\ningress: A\ndeployments: []\n",
			[]string{
				`3:10 ingress: "A" is not a deployment of this app`,
				`4:14 deployments: at least one deployment is required`,
			}},
		{"duplicate deployment", base + "- name: B\n  args: [{handle: A}]\n- name: A\n",
			[]string{
				`6:3 deployments[1]: deployment B is not reachable from ingress A`,
				`8:9 deployments[2].name: duplicate deployment name "A", first defined at line 5`,
			}},

		// args
		{"handle unknown", base + "  args: [{handle: Z}]\n",
			[]string{`6:19 deployments[0].args[0].handle: handle "Z" is not a deployment of this app`}},
		{"handle self", base + "  args:\n  - handle: A\n",
			[]string{`7:13 deployments[0].args[0].handle: deployment A cannot take a handle to itself`}},
		{"handle empty", base + "  args: [{handle: ''}]\n",
			[]string{`6:19 deployments[0].args[0].handle: is required`}},
		{"handle not a string", base + "  args: [{handle: [B]}]\n",
			[]string{`6:19 deployments[0].args[0].handle: must be a string, got a list`}},
		{"handle with other keys", base + "  args: [{handle: A, x: 1}]\n",
			[]string{`6:22 deployments[0].args[0]: a handle arg takes no other key, got "x"`}},
		{"literal nan", base + "  args: [1, {x: .nan}]\n",
			[]string{`6:17 deployments[0].args[1].x: number .nan has no JSON form`}},

		// edges
		{"edge unknown", base + "edges:\n- {from: A, to: Z}\n",
			[]string{`7:17 edges[0].to: "Z" is not a deployment of this app`}},
		{"edge missing from", base + "edges:\n- {to: A}\n",
			[]string{`7:3 edges[0].from: is required`}},
		{"edge self", base + "edges:\n- {from: A, to: A}\n",
			[]string{`7:3 edges[0]: edge from A to itself`}},
		{"edge duplicate", base + "- name: B\nedges:\n- {from: A, to: B}\n- {from: A, to: B}\n",
			[]string{`9:3 edges[1]: duplicate edge A -> B, first defined at line 8`}},

		// graph
		{"handle cycle", `name: a
route_prefix: /a
ingress: A
deployments:
- name: A
  args: [{handle: B}]
- name: B
  args: [{handle: A}]
`, []string{`8:19 deployments[1].args[0].handle: graph has a cycle: A -> B -> A`}},
		{"edge cycle reported once", `name: a
route_prefix: /a
ingress: A
deployments:
- {name: A}
- {name: B}
- {name: C, args: [{handle: A}]}
edges:
- {from: A, to: B}
- {from: B, to: C}
- {from: C, to: A}
`, []string{`7:29 deployments[2].args[0].handle: graph has a cycle: A -> B -> C -> A`}},
		{"two cycles", `name: a
route_prefix: /a
ingress: A
deployments:
- {name: A}
- {name: B}
- {name: C}
edges:
- {from: A, to: B}
- {from: B, to: A}
- {from: B, to: C}
- {from: C, to: B}
`, []string{
			`10:3 edges[1]: graph has a cycle: A -> B -> A`,
			`12:3 edges[3]: graph has a cycle: B -> C -> B`,
		}},
		{"unreachable", `name: a
route_prefix: /a
ingress: A
deployments:
- name: A
- name: B
- name: C
edges:
- {from: B, to: C}
`, []string{
			`6:3 deployments[1]: deployment B is not reachable from ingress A`,
			`7:3 deployments[2]: deployment C is not reachable from ingress A`,
		}},

		// replicas
		{"replicas min negative", base + "  replicas: {min: -1}\n",
			[]string{`6:19 deployments[0].replicas.min: must be >= 0, got -1`}},
		{"replicas max zero", base + "  replicas: {min: 0, initial: 0, max: 0}\n",
			[]string{`6:39 deployments[0].replicas.max: must be >= 1, got 0`}},
		{"replicas min above max", base + "  replicas:\n    min: 2\n    max: 1\n",
			[]string{`8:10 deployments[0].replicas.max: must be >= replicas.min (2), got 1`}},
		{"replicas initial above max", base + "  replicas: {initial: 3, max: 2}\n",
			[]string{`6:23 deployments[0].replicas.initial: must be <= replicas.max (2), got 3`}},
		{"replicas initial below min", base + "  replicas: {min: 2, initial: 1, max: 3}\n",
			[]string{`6:31 deployments[0].replicas.initial: must be >= replicas.min (2), got 1`}},
		{"replicas above partitions", base + "  replicas: {max: 16}\n",
			[]string{`6:19 deployments[0].replicas.max: replicas.max 16 exceeds partitions 8: a consumer group can have no more busy members than partitions`}},
		{"replicas defaulted max above partitions", "partitions: 2\n" + base + "  replicas: {min: 3}\n",
			[]string{`7:13 deployments[0].replicas.max: replicas.max 3 exceeds partitions 2`}},

		// autoscaling
		{"autoscaling negative target lag", base + "  autoscaling: {target_lag_per_replica: -1}\n",
			[]string{`6:41 deployments[0].autoscaling.target_lag_per_replica: must be a number > 0, got -1`}},
		{"autoscaling zero target lag", base + "  autoscaling: {target_lag_per_replica: 0}\n",
			[]string{`6:41 deployments[0].autoscaling.target_lag_per_replica: must be a number > 0, got 0`}},
		{"autoscaling negative ongoing target", base + "  autoscaling: {target_ongoing_requests: -2}\n",
			[]string{`6:42 deployments[0].autoscaling.target_ongoing_requests: must be a finite number >= 0, got -2`}},
		{"autoscaling activation lag zero", base + "  autoscaling: {activation_lag: 0}\n",
			[]string{`6:33 deployments[0].autoscaling.activation_lag: must be >= 1 (the lag that wakes a deployment at zero), got 0`}},
		{"autoscaling negative delay", base + "  autoscaling: {scale_down_delay: -5s}\n",
			[]string{`6:35 deployments[0].autoscaling.scale_down_delay: must be between 0s and 24h0m0s, got -5s`}},
		{"autoscaling poll too fast", base + "  autoscaling: {poll_interval: 1ms}\n",
			[]string{`6:32 deployments[0].autoscaling.poll_interval: must be between 50ms and 30s, got 1ms`}},
		{"autoscaling unknown field", base + "  autoscaling: {target_lag: 5}\n",
			[]string{`6:17 deployments[0].autoscaling.target_lag: unknown field "target_lag"`}},
		{"autoscaling min above max", base + "  replicas: {min: 3, max: 2}\n  autoscaling: {scale_up_delay: 1s}\n",
			[]string{`6:27 deployments[0].replicas.max: must be >= replicas.min (3), got 2`}},
		{"replicas wrong type", base + "  replicas: {min: \"x\"}\n",
			[]string{`6:19 deployments[0].replicas.min: must be an integer, got string "x"`}},
		{"replicas not a mapping", base + "  replicas: 3\n",
			[]string{`6:13 deployments[0].replicas: must be a mapping, got integer 3`}},

		// numbers and durations
		{"max_ongoing zero", base + "  max_ongoing_requests: 0\n",
			[]string{`6:25 deployments[0].max_ongoing_requests: must be between 1 and 100000, got 0`}},
		{"max_ongoing too big", base + "  max_ongoing_requests: 100001\n",
			[]string{`6:25 deployments[0].max_ongoing_requests: must be between 1 and 100000, got 100001`}},
		{"partitions zero", "partitions: 0\n" + base,
			[]string{`1:13 partitions: must be between 1 and 1024, got 0`}},
		{"partitions too many", "partitions: 1025\n" + base,
			[]string{`1:13 partitions: must be between 1 and 1024, got 1025`}},
		{"partitions overflow", "partitions: 99999999999\n" + base,
			[]string{`1:13 partitions: integer 99999999999 out of range`}},
		{"partitions float", "partitions: 1.5\n" + base,
			[]string{`1:13 partitions: must be an integer, got number 1.5`}},
		{"request_timeout zero", "request_timeout: 0s\n" + base,
			[]string{`1:18 request_timeout: must be > 0, got 0s`}},
		{"request_timeout negative", "request_timeout: -1s\n" + base,
			[]string{`1:18 request_timeout: must be > 0, got -1s`}},
		{"request_timeout too long", "request_timeout: 11m\n" + base,
			[]string{`1:18 request_timeout: must be <= 10m0s, got 11m0s`}},
		{"request_timeout no unit", "request_timeout: 30\n" + base,
			[]string{`1:18 request_timeout: bad duration "30": use a number with a unit`}},
		{"delivery unknown", "delivery: exactly-once\n" + base,
			[]string{`1:11 delivery: unknown delivery "exactly-once": use "at_least_once" (the default) or "exactly_once"`}},
		{"delivery not a string", "delivery: [exactly_once]\n" + base,
			[]string{`1:11 delivery: `}},

		// resources
		{"cpu negative", base + "  resources: {cpu: -1}\n",
			[]string{`6:20 deployments[0].resources.cpu: must be a finite number >= 0, got -1`}},
		{"cpu infinite", base + "  resources: {cpu: .inf}\n",
			[]string{`6:20 deployments[0].resources.cpu: must be a finite number, got .inf`}},
		{"memory negative", base + "  resources: {memory: -1GiB}\n",
			[]string{`6:23 deployments[0].resources.memory: bad size "-1GiB": must not be negative`}},
		{"memory negative int", base + "  resources: {memory: -5}\n",
			[]string{`6:23 deployments[0].resources.memory: bad size -5: must not be negative`}},
		{"memory bad unit", base + "  resources: {memory: 8XB}\n",
			[]string{`6:23 deployments[0].resources.memory: bad size "8XB": unknown unit "XB"`}},
		{"gpu fraction above one", base + "  resources: {gpu: 1.5}\n",
			[]string{`6:20 deployments[0].resources.gpu: gpu 1.5: above 1, ask for whole GPUs`}},
		{"gpu negative", base + "  resources: {gpu: -0.5}\n",
			[]string{`6:20 deployments[0].resources.gpu: must be a finite number >= 0, got -0.5`}},
		{"gpu memory without gpu", base + "  resources: {gpu_memory: 8GiB}\n",
			[]string{`6:27 deployments[0].resources.gpu_memory: is set but resources.gpu is 0`}},

		// batching, models, user_config
		{"batch size too big", base + "  batching: {max_batch_size: 10001}\n",
			[]string{`6:30 deployments[0].batching.max_batch_size: must be between 0 and 10000, got 10001`}},
		{"batch size negative", base + "  batching: {max_batch_size: -1}\n",
			[]string{`6:30 deployments[0].batching.max_batch_size: must be between 0 and 10000, got -1`}},
		{"batch wait too long", base + "  batching: {max_batch_size: 4, batch_wait_timeout: 11s}\n",
			[]string{`6:53 deployments[0].batching.batch_wait_timeout: must be <= 10s, got 11s`}},
		{"batch wait negative", base + "  batching: {max_batch_size: 4, batch_wait_timeout: -1ms}\n",
			[]string{`6:53 deployments[0].batching.batch_wait_timeout: must be >= 0, got -1ms`}},
		{"max models negative", base + "  max_models_per_replica: -1\n",
			[]string{`6:27 deployments[0].max_models_per_replica: must be >= 0, got -1`}},
		{"user_config list", base + "  user_config: [1, 2]\n",
			[]string{`6:16 deployments[0].user_config: must be a mapping, got a list`}},
		{"user_config scalar", base + "  user_config: fast\n",
			[]string{`6:16 deployments[0].user_config: must be a mapping, got string "fast"`}},
		{"ordered not bool", base + "  ordered: yes\n",
			[]string{`6:12 deployments[0].ordered: must be a boolean (true or false), got string "yes"`}},

		// strictness
		{"unknown top-level field", base + "replica: 2\n",
			[]string{`6:1 replica: unknown field "replica"`}},
		{"unknown field suggestion", base + "  replicass: {max: 2}\n",
			[]string{`6:3 deployments[0].replicass: unknown field "replicass" (did you mean "replicas"?)`}},
		{"camel case suggestion", "routePrefix: /b\n" + base,
			[]string{`1:1 routePrefix: unknown field "routePrefix" (did you mean "route_prefix"?)`}},
		{"duplicate key", base + "name: b\n",
			[]string{`6:1 name: duplicate key "name" (first at line 1)`}},
		{"duplicate nested key", base + "  replicas: {max: 2, max: 3}\n",
			[]string{`6:22 deployments[0].replicas.max: duplicate key "max" (first at line 6)`}},
		{"duplicate key in user_config", base + "  user_config: {a: 1, a: 2}\n",
			[]string{`6:23 deployments[0].user_config.a: duplicate key "a" (first at line 6)`}},
		{"merge key", base + "  replicas: {<<: {max: 2}}\n",
			[]string{`6:14 deployments[0].replicas: merge keys (<<) are not supported`}},
		{"deployment not a mapping", "name: a\nroute_prefix: /a\ningress: A\ndeployments:\n- A\n",
			[]string{`5:3 deployments[0]: must be a mapping, got string "A"`}},
		{"document not a mapping", "- a\n- b\n",
			[]string{`1:1 : an application must be a mapping, got a list`}},
		{"self-containing alias", base + "  user_config: &x {a: *x}\n",
			[]string{`6:23 deployments[0].user_config.a: alias *x contains itself`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			apps, err := Parse("t.yaml", []byte(tt.yaml))
			if apps != nil {
				t.Errorf("got %d apps with errors, want none", len(apps))
			}
			checkErrors(t, "t.yaml", err, tt.want)
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       string // the whole error text
	}{
		{"empty", "", "t.yaml: no application: the file holds no YAML document"},
		{"only comments", "# nothing\n", "t.yaml: no application: the file holds no YAML document"},
		{"only separators", "---\n---\n", "t.yaml: no application: the file holds no YAML document"},
		{"syntax", "name: a\nroute_prefix: [\n", "t.yaml:3: bad YAML: did not find expected node content"},
		{"unclosed flow list", "name: [a\n", "t.yaml:2: bad YAML: did not find expected ',' or ']'"},
		{"block mapping", "name: a\n  route_prefix: /a\n", "t.yaml:2: bad YAML: mapping values are not allowed in this context"},
		{"bad key", "name: a\nroute_prefix: /a\n- x\n", "t.yaml:3: bad YAML: did not find expected key"},
		{"tab indent", "name: a\ndeployments:\n\t- name: A\n", "t.yaml:3: bad YAML: found character that cannot start any token"},
		{"unknown anchor", base + "  replicas: *nope\n", "t.yaml: bad YAML: unknown anchor 'nope' referenced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("t.yaml", []byte(tt.yaml))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got error\n%v\nwant\n%v", err, tt.want)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want Errors", err)
			}
		})
	}
}

func TestParseReportsAllErrors(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/invalid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("testdata/invalid.yaml", data)
	checkErrors(t, "testdata/invalid.yaml", err, []string{
		`1:7 name: bad character '_' in "bad_app"`,
		`2:15 route_prefix: "/v2/models" is reserved`,
		`3:10 ingress: "Missing" is not a deployment of this app`,
		`7:29 deployments[0].replicas.max: must be >= replicas.min (2), got 1`,
		`8:22 deployments[0].resources.gpu: gpu 1.5: above 1, ask for whole GPUs`,
		`9:5 deployments[0].unknown_field: unknown field "unknown_field"`,
		`12:17 deployments[1].args[0].handle: graph has a cycle: A -> B -> A`,
		`13:11 deployments[2].name: duplicate deployment name "B", first defined at line 10`,
		`16:5 edges[1]: edge from A to itself`,
	})
}

func TestInvalidFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/cycle.yaml", []string{
			`10:5 deployments[2]: deployment Orphan is not reachable from ingress Router`,
			`12:5 edges[0]: graph has a cycle: Router -> Worker -> Router`,
		}},
		{"testdata/syntax.yaml", []string{
			`5:0 : bad YAML: did not find expected ',' or '}'`,
		}},
		{"testdata/strict.yaml", []string{
			`6:5 deployments[0].replica: unknown field "replica" (did you mean "replicas"?)`,
			`7:21 deployments[0].replicas.min: must be an integer, got string "one"`,
			`9:5 deployments[0].max_ongoing_requests: duplicate key "max_ongoing_requests" (first at line 8)`,
			`10:25 deployments[0].resources.memory: bad size "8XB": unknown unit "XB"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.file, mustRead(t, tt.file))
			checkErrors(t, tt.file, err, tt.want)
		})
	}
}

func TestParseTypeErrorsDoNotCascade(t *testing.T) {
	t.Parallel()
	// A badly typed value is reported once, not again by validation, and
	// other problems are still found.
	yml := `name: a
route_prefix: /a
ingress: A
partitions: many
deployments:
- name: [A]
- name: B
  max_ongoing_requests: 0
`
	_, err := Parse("t.yaml", []byte(yml))
	checkErrors(t, "t.yaml", err, []string{
		`4:13 partitions: must be an integer, got string "many"`,
		`6:9 deployments[0].name: must be a string, got a list`,
		`8:25 deployments[1].max_ongoing_requests: must be between 1 and 100000, got 0`,
	})
}

func TestParseMultipleDocuments(t *testing.T) {
	t.Parallel()
	yml := base + "---\n" + strings.NewReplacer("name: a", "name: b", "/a", "/b").Replace(base) +
		"---\n" + strings.Replace(base, "- name: A", "- name: A\n  replicas: {max: 0}", 1)
	_, err := Parse("t.yaml", []byte(yml))
	checkErrors(t, "t.yaml", err, []string{
		`13:7 name: duplicate app name "a", first defined at line 1`,
		`14:15 route_prefix: route prefix "/a" is also used by app "a" (at line 2)`,
		`18:19 deployments[0].replicas.max: must be >= 1, got 0`,
	})

	apps, err := Parse("t.yaml", []byte(base+"---\n"+strings.NewReplacer("name: a", "name: b", "/a", "/b").Replace(base)))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].Name != "a" || apps[1].Name != "b" {
		t.Fatalf("got %d apps, want a and b", len(apps))
	}
}

func TestExampleFiles(t *testing.T) {
	t.Parallel()
	hello := &App{
		Name: "hello", RoutePrefix: "/hello", Ingress: "LanguageClassifier",
		Partitions: 8, RequestTimeout: Duration(30 * time.Second),
		Deployments: []Deployment{
			{
				Name: "LanguageClassifier", Handler: "LanguageClassifier",
				Args: []Arg{
					{Handle: "SpanishResponder"},
					{Handle: "FrenchResponder"},
					{Value: json.RawMessage(`3`)},
				},
				Replicas:            Replicas{Min: 1, Initial: 1, Max: 4},
				MaxOngoingRequests:  100,
				UserConfig:          json.RawMessage(`{"threshold": 0.5}`),
				Resources:           Resources{CPU: 1, Memory: 512 << 20, GPU: 0.5, GPUMemory: 8 << 30},
				Batching:            Batching{MaxBatchSize: 16, BatchWaitTimeout: Duration(10 * time.Millisecond)},
				MaxModelsPerReplica: 3,
			},
			{Name: "SpanishResponder"},
			{Name: "FrenchResponder"},
		},
	}
	hello.Default()
	pipeline := &App{
		Name: "pipeline", RoutePrefix: "/pipeline", Ingress: "A",
		Deployments: []Deployment{
			{Name: "A"},
			{Name: "B", Replicas: Replicas{Min: 0, Initial: 1, Max: 4}},
			{Name: "C", Batching: Batching{MaxBatchSize: 32}},
		},
		Edges: []Edge{{From: "A", To: "B"}, {From: "B", To: "C"}},
	}
	pipeline.Default()
	for file, want := range map[string]*App{"testdata/hello.yaml": hello, "testdata/pipeline.yaml": pipeline} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		apps, err := Parse(file, data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(apps) != 1 || !Equal(apps[0], want) {
			t.Errorf("%s: got %+v, want %+v", file, apps[0], want)
		}
		if err := want.Validate(); err != nil {
			t.Errorf("%s: the Go-built app does not validate: %v", file, err)
		}
		if apps[0].Source == nil || apps[0].Source.File != file {
			t.Errorf("%s: Source = %+v", file, apps[0].Source)
		}
	}
}

func TestReplicaDefaultsYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		replicas string
		want     Replicas
	}{
		{"", Replicas{1, 1, 1}},
		{"{}", Replicas{1, 1, 1}},
		{"{max: 4}", Replicas{1, 1, 4}},
		{"{min: 0}", Replicas{0, 1, 1}},
		{"{min: 0, max: 4}", Replicas{0, 1, 4}},
		{"{min: 0, initial: 0, max: 4}", Replicas{0, 0, 4}},
		{"{min: 2}", Replicas{2, 2, 2}},
		{"{min: 2, max: 5}", Replicas{2, 2, 5}},
		{"{initial: 3}", Replicas{1, 3, 3}},
		{"{initial: 3, max: 6}", Replicas{1, 3, 6}},
		{"{initial: 0, max: 3}", Replicas{0, 0, 3}},
		{"{min: 1, initial: 2}", Replicas{1, 2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.replicas, func(t *testing.T) {
			t.Parallel()
			yml := base
			if tt.replicas != "" {
				yml += "  replicas: " + tt.replicas + "\n"
			}
			apps, err := Parse("t.yaml", []byte(yml))
			if err != nil {
				t.Fatal(err)
			}
			if got := apps[0].Deployments[0].Replicas; got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			// Defaulting again changes nothing.
			again := apps[0].Clone()
			again.Default()
			if !Equal(again, apps[0]) {
				t.Errorf("Default is not idempotent: %+v", again.Deployments[0].Replicas)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	apps, err := Parse("t.yaml", []byte(base+"  batching: {max_batch_size: 8}\n- name: B\n  handler: Shared\n  batching: {max_batch_size: 8, batch_wait_timeout: 0s}\nedges: [{from: A, to: B}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	if a.Partitions != 8 || a.RequestTimeout != Duration(30*time.Second) {
		t.Errorf("partitions %d, request_timeout %v", a.Partitions, a.RequestTimeout)
	}
	d0, d1 := a.Deployments[0], a.Deployments[1]
	if d0.Handler != "A" || d1.Handler != "Shared" {
		t.Errorf("handlers %q, %q", d0.Handler, d1.Handler)
	}
	if d0.MaxOngoingRequests != 100 {
		t.Errorf("max_ongoing_requests %d", d0.MaxOngoingRequests)
	}
	if d0.Batching.BatchWaitTimeout != Duration(10*time.Millisecond) {
		t.Errorf("default batch_wait_timeout %v", d0.Batching.BatchWaitTimeout)
	}
	if d1.Batching.BatchWaitTimeout != 0 {
		t.Errorf("explicit batch_wait_timeout 0 became %v", d1.Batching.BatchWaitTimeout)
	}
}

func TestDefaultGo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want Replicas
	}{
		{Replicas{}, Replicas{1, 1, 1}},
		{Replicas{Max: 4}, Replicas{1, 1, 4}},
		{Replicas{Min: 2}, Replicas{2, 2, 2}},
		{Replicas{Min: 2, Max: 6}, Replicas{2, 2, 6}},
		{Replicas{Initial: 2, Max: 4}, Replicas{0, 2, 4}}, // min 0 counts as set beside initial
		{Replicas{Min: 1, Initial: 3, Max: 4}, Replicas{1, 3, 4}},
	}
	for _, tt := range tests {
		a := &App{Name: "a", RoutePrefix: "/a", Ingress: "A", Deployments: []Deployment{{Name: "A", Replicas: tt.in}}}
		a.Default()
		if got := a.Deployments[0].Replicas; got != tt.want {
			t.Errorf("Default(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
		if err := a.Validate(); err != nil {
			t.Errorf("Default(%+v): %v", tt.in, err)
		}
		b := a.Clone()
		b.Default()
		if !Equal(a, b) {
			t.Errorf("Default(%+v) is not idempotent", tt.in)
		}
	}
	a := &App{Deployments: []Deployment{{Name: "A", Batching: Batching{MaxBatchSize: 2}}}}
	a.Default()
	if a.Partitions != 8 || a.RequestTimeout != DefaultRequestTimeout || a.Deployments[0].Handler != "A" ||
		a.Deployments[0].MaxOngoingRequests != 100 || a.Deployments[0].Batching.BatchWaitTimeout != DefaultBatchWaitTimeout {
		t.Errorf("Default gave %+v", a)
	}
}

// add_partitions lifts the replicas.max ≤ partitions rule: the
// autoscaler grows the input topics instead.
func TestAddPartitionsAllowsMaxAbovePartitions(t *testing.T) {
	if _, err := Parse("t.yaml", []byte(base+"  replicas: {max: 16}\n  autoscaling: {add_partitions: true}\n")); err != nil {
		t.Fatal(err)
	}
}

func TestValidateGoApp(t *testing.T) {
	t.Parallel()
	a := &App{
		Name: "a", RoutePrefix: "/a/", Ingress: "A",
		Deployments: []Deployment{
			{Name: "A", Args: []Arg{
				{Handle: "B", Value: json.RawMessage(`1`)},
				{Value: json.RawMessage(`{"handle":"B"}`)},
				{Value: json.RawMessage(`{bad`)},
			}},
			{Name: "B", UserConfig: json.RawMessage(`"x"`), Resources: Resources{CPU: -1}},
		},
	}
	a.Default()
	err := a.Validate()
	want := strings.Join([]string{
		`route_prefix: must not end with "/" (unless it is just "/"), got "/a/"`,
		`deployments[0].args[0]: has both a handle and a value`,
		`deployments[0].args[1]: value would read back as a handle to "B": set Handle instead`,
		`deployments[0].args[2]: value is not valid JSON`,
		`deployments[1].user_config: must be a mapping, got a string`,
		`deployments[1].resources.cpu: must be a finite number >= 0, got -1`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 0 || e.File != "" {
		t.Errorf("errors.As gave %+v", e)
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "app.yaml", Line: 12, Column: 7, Field: "deployments[1].replicas.max", Msg: "m"}, "app.yaml:12:7: deployments[1].replicas.max: m"},
		{Error{Field: "name", Msg: "m"}, "name: m"},
		{Error{File: "app.yaml", Line: 3, Msg: "m"}, "app.yaml:3: m"},
		{Error{File: "app.yaml", Msg: "m"}, "app.yaml: m"},
		{Error{Line: 2, Column: 1, Field: "f", Msg: "m"}, "2:1: f: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"testdata/hello.yaml", "testdata/pipeline.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		apps, err := Parse(file, data)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(apps[0])
		if err != nil {
			t.Fatal(err)
		}
		var back App
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !Equal(&back, apps[0]) {
			t.Errorf("%s: round trip changed the app:\n%s", file, b)
		}
		if err := back.Validate(); err != nil {
			t.Errorf("%s: %v", file, err)
		}
		b2, _ := json.Marshal(&back)
		if string(b2) != string(b) {
			t.Errorf("%s: JSON not stable:\n%s\n%s", file, b, b2)
		}
	}
	// The JSON spells sizes, durations and args as documented.
	apps, _ := Parse("t.yaml", mustRead(t, "testdata/hello.yaml"))
	b, _ := json.Marshal(apps[0])
	for _, s := range []string{`"request_timeout":"30s"`, `"gpu_memory":"8GiB"`, `"memory":"512MiB"`,
		`"args":[{"handle":"SpanishResponder"},{"handle":"FrenchResponder"},3]`, `"batch_wait_timeout":"10ms"`,
		`"user_config":{"threshold":0.5}`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON lacks %s:\n%s", s, b)
		}
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestArgJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		json string
		want Arg
	}{
		{`{"handle":"B"}`, Arg{Handle: "B"}},
		{`{ "handle" : "B" }`, Arg{Handle: "B"}},
		{`{"handle":"B","x":1}`, Arg{Value: json.RawMessage(`{"handle":"B","x":1}`)}},
		{`{"handle":3}`, Arg{Value: json.RawMessage(`{"handle":3}`)}},
		{`[1, 2]`, Arg{Value: json.RawMessage(`[1,2]`)}},
		{`null`, Arg{Value: json.RawMessage(`null`)}},
		{`"s"`, Arg{Value: json.RawMessage(`"s"`)}},
	}
	for _, tt := range tests {
		var got Arg
		if err := json.Unmarshal([]byte(tt.json), &got); err != nil {
			t.Fatalf("%s: %v", tt.json, err)
		}
		if got.Handle != tt.want.Handle || string(got.Value) != string(tt.want.Value) {
			t.Errorf("%s: got %+v, want %+v", tt.json, got, tt.want)
		}
	}
	b, err := json.Marshal([]Arg{{Handle: "B"}, {Value: json.RawMessage(`{"a":1}`)}, {}})
	if err != nil || string(b) != `[{"handle":"B"},{"a":1},null]` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Bytes
		wantErr string
	}{
		{"0", 0, ""},
		{"1000", 1000, ""},
		{"1000B", 1000, ""},
		{"10KiB", 10 << 10, ""},
		{"10Ki", 10 << 10, ""},
		{"512MiB", 512 << 20, ""},
		{"8GiB", 8 << 30, ""},
		{"1.5Gi", 3 << 29, ""},
		{"2TiB", 2 << 40, ""},
		{"1PiB", 1 << 50, ""},
		{"7EiB", 7 << 60, ""},
		{"4G", 4e9, ""},
		{"4GB", 4e9, ""},
		{"10KB", 10e3, ""},
		{"10kB", 10e3, ""},
		{"3MB", 3e6, ""},
		{"1.5KB", 1500, ""},
		{" 512 MiB ", 512 << 20, ""},
		{"+1K", 1000, ""},
		{"", 0, "empty size"},
		{"   ", 0, "empty size"},
		{"8XB", 0, `bad size "8XB": unknown unit "XB"`},
		{"8gib", 0, `unknown unit "gib"`},
		{"-1GiB", 0, `bad size "-1GiB": must not be negative`},
		{"GiB", 0, `bad size "GiB": must start with a number`},
		{".", 0, "must start with a number"},
		{"1.5", 0, "not a whole number of bytes"},
		{"0.1KiB", 0, "not a whole number of bytes"},
		{"1e9", 0, `unknown unit "e9"`},
		{"1..5K", 0, `unknown unit ".5K"`},
		{"8EiB", 0, "too large"},
		{"9223372036854775808", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseBytes(%q): %v", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseBytes(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		case got != tt.want:
			t.Errorf("ParseBytes(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestBytesString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Bytes
		want string
	}{
		{0, "0B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{512 << 20, "512MiB"},
		{8 << 30, "8GiB"},
		{1024 << 30, "1TiB"},
		{3 << 60, "3EiB"},
		{-(8 << 30), "-8GiB"},
		{1<<63 - 1, "9223372036854775807B"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Bytes(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in >= 0 {
			back, err := ParseBytes(tt.want)
			if err != nil || back != tt.in {
				t.Errorf("ParseBytes(%q) = %d, %v; want %d", tt.want, back, err, tt.in)
			}
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Duration
		wantErr string
	}{
		{"10ms", Duration(10 * time.Millisecond), ""},
		{"30s", Duration(30 * time.Second), ""},
		{"1m30s", Duration(90 * time.Second), ""},
		{"0", 0, ""},
		{"", 0, "empty duration"},
		{"30", 0, `bad duration "30"`},
		{"3 s", 0, `bad duration "3 s"`},
		{"fast", 0, `bad duration "fast"`},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseDuration(%q): %v", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseDuration(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		case got != tt.want:
			t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestUnitsEncodings checks that Duration and Bytes read and write as
// strings through encoding/json and yaml.v3 alike.
func TestUnitsEncodings(t *testing.T) {
	t.Parallel()
	type units struct {
		Timeout Duration `json:"timeout" yaml:"timeout"`
		Memory  Bytes    `json:"memory" yaml:"memory"`
	}
	in := units{Duration(1500 * time.Millisecond), 8 << 30}

	j, err := json.Marshal(in)
	if err != nil || string(j) != `{"timeout":"1.5s","memory":"8GiB"}` {
		t.Fatalf("json.Marshal = %s, %v", j, err)
	}
	var fromJSON units
	if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON != in {
		t.Errorf("json.Unmarshal = %+v, %v", fromJSON, err)
	}
	if err := json.Unmarshal([]byte(`{"memory":1024}`), &fromJSON); err != nil || fromJSON.Memory != 1024 {
		t.Errorf("json number of bytes: %+v, %v", fromJSON, err)
	}
	if err := json.Unmarshal([]byte(`{"memory":"8XB"}`), &fromJSON); err == nil {
		t.Errorf("json accepted 8XB")
	}
	if err := json.Unmarshal([]byte(`{"timeout":"soon"}`), &fromJSON); err == nil {
		t.Errorf("json accepted duration soon")
	}

	y, err := yaml.Marshal(in)
	if err != nil || string(y) != "timeout: 1.5s\nmemory: 8GiB\n" {
		t.Fatalf("yaml.Marshal = %q, %v", y, err)
	}
	var fromYAML units
	if err := yaml.Unmarshal(y, &fromYAML); err != nil || fromYAML != in {
		t.Errorf("yaml.Unmarshal = %+v, %v", fromYAML, err)
	}
	if err := yaml.Unmarshal([]byte("memory: 1000\n"), &fromYAML); err != nil || fromYAML.Memory != 1000 {
		t.Errorf("yaml integer bytes: %+v, %v", fromYAML, err)
	}
	if err := yaml.Unmarshal([]byte("memory: -1GiB\n"), &fromYAML); err == nil {
		t.Errorf("yaml accepted -1GiB")
	}
}

func TestCloneEqual(t *testing.T) {
	t.Parallel()
	apps, err := Parse("t.yaml", mustRead(t, "testdata/hello.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	c := a.Clone()
	if !Equal(a, c) {
		t.Fatal("clone differs")
	}
	c.Deployments[0].Args[2].Value[0] = '4'
	c.Deployments[0].UserConfig[2] = 'T'
	c.Edges = append(c.Edges, Edge{From: "x", To: "y"})
	if string(a.Deployments[0].Args[2].Value) != "3" || a.Deployments[0].UserConfig[2] != 't' || len(a.Edges) != 0 {
		t.Error("clone shares memory with the original")
	}
	if Equal(a, c) {
		t.Error("Equal missed differences")
	}
	// JSON values compare by meaning; nil and empty lists are alike.
	x := &App{Deployments: []Deployment{{UserConfig: json.RawMessage(`{"a": 1, "b": [true]}`)}}, Edges: []Edge{}}
	y := &App{Deployments: []Deployment{{UserConfig: json.RawMessage(`{"b":[true],"a":1}`), Args: []Arg{}}}}
	if !Equal(x, y) {
		t.Error("Equal compared JSON by spelling")
	}
	if Equal(x, nil) || !Equal(nil, nil) {
		t.Error("Equal with nil")
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range []string{"testdata/hello.yaml", "testdata/pipeline.yaml", "testdata/invalid.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		base,
		base + "---\n" + base,
		base + "  args: [1, 'x', {a: [1, {b: null}]}, {handle: A}]\n",
		base + "  user_config: &a {x: *a}\n",
		base + "  replicas: {min: 0, initial: 0, max: 8}\n  resources: {memory: 1.5Gi, gpu: 1, gpu_memory: 80GB}\n",
		"a: &a [*a, *a]\nb: &b [*a, *a]\n",
		"name: [\n",
		"",
		"- 1\n",
		"name: a\nname: b\n",
		base + "  user_config: {1: a, '1': b}\n",
		base + "  args: [.inf, 0x10, 1e400, !!binary aGk=, 2001-12-14]\n",
		graphHead + "  - {name: In, kind: cel}\n  - {name: A}\n  - {name: B}\n  - {name: J, join: {type: outer, window: 1s, trigger: [A]}}\n  - {name: S}\n" +
			"edges:\n  - {from: In, to: A}\n  - {from: In, to: B}\n  - {from: A, to: J}\n  - {from: B, to: J}\n  - {from: J, to: S, mirror: true}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		apps, err := Parse("f.yaml", data)
		if err != nil {
			if apps != nil {
				t.Fatal("apps returned with an error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %v is not a non-empty Errors", err)
			}
			return
		}
		if len(apps) == 0 {
			t.Fatal("no apps and no error")
		}
		for _, a := range apps {
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var back App
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal %s: %v", b, err)
			}
			if err := back.Validate(); err != nil {
				t.Fatalf("round trip no longer validates: %v\n%s", err, b)
			}
			if !Equal(&back, a) {
				t.Fatalf("round trip changed the app:\n%s", b)
			}
			if (a.CheckGraph() == nil) != (back.CheckGraph() == nil) || (a.NotServed() == nil) != (back.NotServed() == nil) {
				t.Fatalf("the dataflow rules judge the round trip otherwise:\n%s", b)
			}
		}
	})
}

func ExampleParse() {
	yml := `name: shop
route_prefix: /shop
ingress: Front
deployments:
  - name: Front
    args: [{handle: Ranker}]
    replicas: {min: 2, max: 1}
  - name: Ranker
    resources: {gpu: 1.5}
`
	_, err := Parse("shop.yaml", []byte(yml))
	fmt.Println(err)
	// Output:
	// shop.yaml:7:29: deployments[0].replicas.max: must be >= replicas.min (2), got 1
	// shop.yaml:9:22: deployments[1].resources.gpu: gpu 1.5: above 1, ask for whole GPUs
}

func TestDocExample(t *testing.T) {
	t.Parallel()
	yml := `name: hello
route_prefix: /hello
ingress: Classifier
partitions: 8
request_timeout: 30s
deployments:
  - name: Classifier
    handler: Classifier
    args:
      - handle: Responder
      - {threshold: 3}
    replicas: {min: 0, initial: 1, max: 4}
    max_ongoing_requests: 100
    user_config: {threshold: 0.5}
    resources: {cpu: 1, memory: 512MiB, gpu: 0.5, gpu_memory: 8GiB}
    batching: {max_batch_size: 16, batch_wait_timeout: 10ms}
    max_models_per_replica: 3
    ordered: false
  - name: Responder
edges:
  - {from: Classifier, to: Responder}
`
	if _, err := Parse("doc.yaml", []byte(yml)); err != nil {
		t.Fatal(err)
	}
}
