package cel

import (
	"context"
	"encoding/json"
	"testing"
)

// benchBody is a typical JSON payload of about 200 bytes.
var benchBody = []byte(`{"name":"Ada Lovelace","language":"EN","country":"FR","score":0.73,` +
	`"tier":"gold","tags":["math","engines","poetry"],` +
	`"account":{"id":"acct-1842","created":"2021-04-03T10:00:00Z","active":true},"items":3}`)

var benchHeaders = map[string]string{
	"x-tenant":     "acme",
	"x-user":       "user-48213",
	"content-type": "application/json",
	"user-agent":   "bench/1.0",
}

// benchRules are the typical rules of the issue.
var benchRules = []struct {
	name string
	expr string
	kind Kind
}{
	{"header", `request.headers["x-tenant"] == "acme"`, Condition},
	{"json_field", `body.score > 0.5 && body.country == "FR"`, Condition},
	{"bucket", `bucket(request.headers["x-user"], 100) < 10`, Condition},
	{"transform", `{"name": body.name, "lang": body.language.lowerAscii()}`, Transform},
}

func benchInput() *Input {
	return &Input{Headers: benchHeaders, ID: "req-1", App: "shop", Deployment: "router", Body: benchBody}
}

func run(ctx context.Context, b testing.TB, p *Program, kind Kind, in *Input) {
	var err error
	if kind == Condition {
		_, err = p.Bool(ctx, in)
	} else {
		_, err = p.JSON(ctx, in)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEval evaluates each rule on one Input: the body is parsed in
// the first evaluation only, so this is the evaluation alone.
func BenchmarkEval(b *testing.B) {
	ctx := context.Background()
	for _, r := range benchRules {
		b.Run(r.name, func(b *testing.B) {
			p, err := Compile(r.expr, r.kind)
			if err != nil {
				b.Fatal(err)
			}
			in := benchInput()
			run(ctx, b, p, r.kind, in)
			b.ReportAllocs()
			for b.Loop() {
				run(ctx, b, p, r.kind, in)
			}
		})
	}
}

// BenchmarkRequest evaluates each rule on a fresh Input per iteration,
// as a replica does per record: this includes the JSON parse of the body
// for the rules that read it.
func BenchmarkRequest(b *testing.B) {
	ctx := context.Background()
	for _, r := range benchRules {
		b.Run(r.name, func(b *testing.B) {
			p, err := Compile(r.expr, r.kind)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				run(ctx, b, p, r.kind, benchInput())
			}
		})
	}
}

// BenchmarkEvalCancellable is BenchmarkEval with a context that can be
// cancelled, which costs the interrupt plumbing.
func BenchmarkEvalCancellable(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, r := range benchRules {
		b.Run(r.name, func(b *testing.B) {
			p, err := Compile(r.expr, r.kind)
			if err != nil {
				b.Fatal(err)
			}
			in := benchInput()
			run(ctx, b, p, r.kind, in)
			b.ReportAllocs()
			for b.Loop() {
				run(ctx, b, p, r.kind, in)
			}
		})
	}
}

// BenchmarkParseJSON is the body parse alone.
func BenchmarkParseJSON(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, ok := parseJSON(benchBody); !ok {
			b.Fatal("not JSON")
		}
	}
}

// BenchmarkParseJSONStdlib is encoding/json's Unmarshal into an any, for
// comparison with parseJSON.
func BenchmarkParseJSONStdlib(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		var v any
		if err := json.Unmarshal(benchBody, &v); err != nil {
			b.Fatal(err)
		}
	}
}
