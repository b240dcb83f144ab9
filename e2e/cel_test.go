package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/protocol"
)

// hello-cel answers as hello does, for the same bodies: the classifier is
// only CEL rules on edges.
func TestHelloCELAnswersAsHello(t *testing.T) {
	t.Parallel()
	if code, out := run(t, "deploy", "-f", "../examples/hello-cel/hello-cel.yaml"); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	bodies := []string{
		`{"language":"spanish","name":"Ana"}`,
		`{"language":"French","name":"Luc"}`,
		`{"language":"klingon","name":"K"}`,
		`{"name":"nobody"}`,
		`{"language":"spanish"}`,
	}
	for _, b := range bodies {
		wantCode, want := post(t, "/hello", b)
		code, got := post(t, "/hello-cel", b)
		if code != wantCode || got != want {
			t.Errorf("%s: hello-cel %d %q, hello %d %q", b, code, got, wantCode, want)
		}
	}
}

const rulesYAML = `name: %[1]s
route_prefix: /%[1]s
ingress: A
deployments:
  - {name: A, handler: Tag, args: [a], routing: %[2]s%[3]s}
  - {name: B, handler: Tag, args: [b]}
  - {name: C, handler: Tag, args: [c]}
edges:
%[4]s`

// Conditions on edges: first match, every match, and the output as the
// answer when nothing matches; headers reach the rules.
func TestCELEdges(t *testing.T) {
	t.Parallel()
	edges := `  - {from: A, to: B, when: 'upstream.output.endsWith("1]")'}
  - {from: A, to: C, when: 'request.headers[?"x-route"].orValue("") == "c" || upstream.output.endsWith("1]")'}
`
	for _, tc := range []struct {
		routing string
		cases   map[string][2]string // body, header → answer
	}{
		{"first", map[string][2]string{"1": {"", "b[a[1]]"}, "2": {"c", "c[a[2]]"}, "3": {"", "a[3]"}}},
		{"all", map[string][2]string{"3": {"c", "c[a[3]]"}, "4": {"", "a[4]"}}},
	} {
		app := "edges-" + tc.routing
		if code, out := run(t, "deploy", "-f", writeFile(t, app+".yaml", fmt.Sprintf(rulesYAML, app, tc.routing, "", edges))); code != 0 {
			t.Fatalf("deploy %s: %s", app, out)
		}
		for body, c := range tc.cases {
			code, got := postHeader(t, "/"+app, body, "X-Route", c[0])
			if code != 200 || got != c[1] {
				t.Errorf("%s %q (x-route %q): %d %q, want %q", app, body, c[0], code, got, c[1])
			}
		}
	}
}

// A split sends each key to one branch, always the same, and spreads keys
// over both branches by weight.
func TestCELSplitIsSticky(t *testing.T) {
	t.Parallel()
	app := "split"
	edges := "  - {from: A, to: B, weight: 1}\n  - {from: A, to: C, weight: 1}\n"
	if code, out := run(t, "deploy", "-f", writeFile(t, app+".yaml", fmt.Sprintf(rulesYAML, app, "split", `, split_key: 'request.headers["x-user"]'`, edges))); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	seen := map[string]int{}
	for u := range 20 {
		user := fmt.Sprintf("user-%d", u)
		_, first := postHeader(t, "/"+app, "x", "X-User", user)
		for range 3 {
			if code, again := postHeader(t, "/"+app, "x", "X-User", user); code != 200 || again != first {
				t.Fatalf("%s: %d %q, then %q: not sticky", user, code, first, again)
			}
		}
		seen[first[:1]]++
	}
	if seen["b"] == 0 || seen["c"] == 0 || seen["b"]+seen["c"] != 20 {
		t.Fatalf("20 users over a 1:1 split: %v", seen)
	}
}

// A rule that fails at run time answers 400 naming the rule (sync) and
// dead-letters the record (offline); the replica keeps serving.
func TestCELRuntimeFailure(t *testing.T) {
	t.Parallel()
	app := "badrule"
	edges := "  - {from: A, to: B, when: 'body.missing == 1'}\n  - {from: A, to: C}\n"
	if code, out := run(t, "deploy", "-f", writeFile(t, app+".yaml", fmt.Sprintf(rulesYAML, app, "first", "", edges))); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	code, got := post(t, "/"+app, `{"x":1}`)
	if code != 400 || !strings.Contains(got, "edges[0].when") {
		t.Fatalf("sync: %d %q, want 400 naming edges[0].when", code, got)
	}
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: namer.Ingress(app), Value: []byte(`{"x":2}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dl := consumeN(ctx, t, namer.DeadLetter(app), 1)
	if e := string(protocol.Header(dl[0].Headers, protocol.HeaderError)); !strings.Contains(e, "edges[0].when") {
		t.Fatalf("dead letter error %q does not name the rule", e)
	}
	// Still serving: a body the rule can read.
	if code, got := post(t, "/"+app, `{"missing":1}`); code != 400 && code != 200 || code == 200 && got == "" {
		t.Fatalf("after a failure: %d %q", code, got)
	}
}

// Rules are checked at deploy time: a condition that is not bool, a syntax
// error, a transform the next deployment cannot take. Exit 2 with the
// file, line and field.
func TestCELDeployErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, edge, want string }{
		{"not bool", `  - {from: A, to: B, when: 'body.x + 1'}`, "edges[0].when"},
		{"syntax", `  - {from: A, to: B, when: 'body.x ==='}`, "edges[0].when"},
		{"transform type", `  - {from: A, to: B, transform: '{"a": 1}'}`, "edges[0].transform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, "bad.yaml", fmt.Sprintf(rulesYAML, "badcel", "all", "", tc.edge+"\n  - {from: A, to: C}\n"))
			code, out := run(t, "deploy", "-f", f)
			if code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, "bad.yaml:") {
				t.Fatalf("exit %d, want 2 naming %s with its place:\n%s", code, tc.want, out)
			}
		})
	}
}

// A gateway rule sends matching requests to another application.
func TestGatewayRule(t *testing.T) {
	t.Parallel()
	if code, out := run(t, "deploy", "-f", "../examples/hello-cel/hello-cel.yaml"); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	spec := `name: front
route_prefix: /front
ingress: E
deployments:
  - {name: E, handler: Echo}
rules:
  - {when: 'request.headers[?"x-lang"].orValue("") == "es"', app: hello-cel}
`
	if code, out := run(t, "deploy", "-f", writeFile(t, "front.yaml", spec)); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	if code, got := postHeader(t, "/front", `{"language":"spanish","name":"Eva"}`, "X-Lang", "es"); code != 200 || got != "Hola Eva" {
		t.Fatalf("ruled: %d %q", code, got)
	}
	if code, got := post(t, "/front", "plain"); code != 200 || got != "plain" {
		t.Fatalf("unruled: %d %q", code, got)
	}
}

func postHeader(t *testing.T, path, body, key, value string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if value != "" {
		req.Header.Set(key, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
