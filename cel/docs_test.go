package cel

import (
	"strings"
	"testing"

	celgo "cel.dev/cel-go/cel"
)

// docExamples are the examples of docs/CEL.md, with what they give.
var docExamples = []struct {
	expr string
	in   *Input
	want string
}{
	{`request.headers["x-tenant"] == "acme"`, &Input{Headers: map[string]string{"x-tenant": "acme"}}, `true`},
	{`"x-beta" in request.headers`, &Input{}, `false`},
	{`request.headers[?"x-variant"].orValue("a") == "b"`, &Input{}, `false`},
	{`request.model.startsWith("resnet")`, &Input{Model: "resnet50"}, `true`},
	{`request.id.matches("^batch-")`, &Input{ID: "batch-7"}, `true`},
	{`body.score > 0.5 && body.country == "FR"`, &Input{Body: []byte(`{"score": 0.7, "country": "FR"}`)}, `true`},
	{`has(body.language) && body.language.lowerAscii() == "french"`, &Input{Body: []byte(`{"language": "French"}`)}, `true`},
	{`body.items.exists(i, i.price > 100.0)`, &Input{Body: []byte(`{"items": [{"price": 150}]}`)}, `true`},
	{`body.?user.?email.orValue("").endsWith("@example.com")`, &Input{Body: []byte(`{"user": {}}`)}, `false`},
	{`body.n == 3 && body.n > 2 && body.n < 4u && body.n + 1.0 == 4.0 && int(body.n) + 1 == 4`, &Input{Body: []byte(`{"n": 3}`)}, `true`},
	{`body.list[body.i]`, &Input{Body: []byte(`{"list": ["a", "b"], "i": 1}`)}, `"b"`},
	{`inputs.scores.data[0] > 0.9 && size(inputs) == 1`, &Input{Body: []byte(`{"inputs": [{"name": "scores", "datatype": "FP32", "shape": [1], "data": [0.95]}]}`)}, `true`},
	{`app == "shop" && deployment.startsWith("ranker")`, &Input{App: "shop", Deployment: "ranker-2"}, `true`},
	{`upstream.output.label == "spam" && upstream.output.confidence >= 0.8`, &Input{UpstreamOutput: []byte(`{"label": "spam", "confidence": 0.85}`)}, `true`},
	{`bucket("user-1", 100)`, &Input{}, `8`},
	{`request.headers[?"x-tenant"].orValue("") == "acme"`, &Input{}, `false`},
	{`bucket(request.headers["x-user"], 100) < 10`, &Input{Headers: map[string]string{"x-user": "user-1"}}, `true`},
	{`request.headers[?"x-experiment"].orValue("a") == "b"`, &Input{Headers: map[string]string{"x-experiment": "b"}}, `true`},
	{`{
  "name": body.name,
  "lang": body.language.lowerAscii(),
  "tags": body.?tags.orValue([]).filter(t, t != ""),
  "vip":  body.?tier.orValue("") == "gold"
}`, &Input{Body: []byte(`{"name": "Ada", "language": "EN", "tags": ["x", ""], "tier": "gold"}`)},
		`{"lang":"en","name":"Ada","tags":["x"],"vip":true}`},
	{`{
  "inputs": [{
    "name": "INPUT0",
    "datatype": "FP32",
    "shape": [1, 3],
    "data": [body.age, body.income, body.score]
  }]
}`, &Input{Body: []byte(`{"age": 42, "income": 51000.5, "score": 0.7}`)},
		`{"inputs":[{"data":[42,51000.5,0.7],"datatype":"FP32","name":"INPUT0","shape":[1,3]}]}`},
}

// TestDocExamples checks that the examples of docs/CEL.md give what the
// page says, and cost under 100 as it says.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	for _, ex := range docExamples {
		got, err := evalJSON(t, ex.expr, ex.in)
		if err != nil || got != ex.want {
			t.Errorf("%s = %s, %v; want %s", ex.expr, got, err, ex.want)
		}
		if c := costOf(t, ex.expr, ex.in); c >= 100 {
			t.Errorf("%s costs %d", ex.expr, c)
		}
	}
}

// TestCostOfLargeComprehension checks the page's claim that a
// comprehension over 100,000 elements fits in the limit.
func TestCostOfLargeComprehension(t *testing.T) {
	t.Parallel()
	body := []byte(`{"list": [` + strings.Repeat("1,", 99_999) + `1]}`)
	p, err := Compile(`body.list.all(x, x > 0)`, Condition)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Bool(t.Context(), &Input{Body: body}); err != nil || !ok {
		t.Fatalf("all over 100,000 elements: %v, %v (cost %d)", ok, err, costOf(t, `body.list.all(x, x > 0)`, &Input{Body: body}))
	}
}

// costOf returns the cost of evaluating expr on in.
func costOf(t *testing.T, expr string, in *Input) uint64 {
	t.Helper()
	env, err := environment()
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		t.Fatal(iss.Err())
	}
	p, err := env.Program(ast, celgo.CostTracking(dynCost{}))
	if err != nil {
		t.Fatal(err)
	}
	_, det, err := p.Eval((*activation)(in))
	if err != nil {
		t.Fatal(err)
	}
	return *det.ActualCost()
}
