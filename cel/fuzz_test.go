package cel

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// ruleSeeds are realistic rules, and a few broken ones, to fuzz from.
var ruleSeeds = []string{
	`request.headers["x-tenant"] == "acme"`,
	`body.score > 0.5 && body.country == "FR"`,
	`bucket(request.headers["x-user"], 100) < 10`,
	`{"name": body.name, "lang": body.language.lowerAscii()}`,
	`request.headers[?"x-variant"].orValue("a") == "b"`,
	`"x-debug" in request.headers && request.model.startsWith("res")`,
	`{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [body.text]}]}`,
	`inputs.x.shape[0] > 8 ? "large" : "small"`,
	`upstream.output.label == "cat" && upstream.output.p >= 0.9`,
	`upstream.outputs.probs.data.exists(p, p > 0.5)`,
	`body.items.filter(i, i.price > 10.0).map(i, i.sku)`,
	`body.tags.all(t, t.matches("^[a-z]+$"))`,
	`app + "/" + deployment + ":" + request.id.split("-")[0]`,
	`has(body.user) && body.user.?email.orValue("").endsWith("@example.com")`,
	`int(body.n) * 2 + size(body.s)`,
	`duration("1s") < duration("2s") && timestamp("2024-01-01T00:00:00Z") < timestamp("2025-01-01T00:00:00Z")`,
	`[1, 2, 3].map(x, [4, 5].map(y, x * y))`,
	`1 +`, `body.`, `request.nope`, `{"a": }`, `"unterminated`,
}

// bodySeeds are payloads to fuzz with.
var bodySeeds = []string{
	`{"score": 0.7, "country": "FR", "name": "Ada", "language": "EN", "tags": ["a"], "n": 2, "s": "x"}`,
	`{"items": [{"price": 12.5, "sku": "a"}, {"price": 3, "sku": "b"}]}`,
	`{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}`,
	`[1, "two", null, {"x": [true]}]`,
	`"just a string"`, `null`, `not json`, ``,
	"\x00\x00\x00\x10{\"inputs\":[]}",
}

// FuzzCompile compiles random rule text as both kinds: it never panics,
// and either compiles to a program of a sensible type or fails with a
// *CompileError.
func FuzzCompile(f *testing.F) {
	for _, s := range ruleSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, kind := range []Kind{Condition, Transform} {
			p, err := Compile(expr, kind)
			if err != nil {
				var ce *CompileError
				if !errors.As(err, &ce) {
					t.Fatalf("%s %q: error %v is not a *CompileError", kind, expr, err)
				}
				if ce.Line < 0 || ce.Column < 0 || ce.Msg == "" {
					t.Fatalf("%s %q: compile error %+v", kind, expr, ce)
				}
				continue
			}
			typ := p.Type()
			if typ == "" || kind == Condition && typ != "bool" && typ != "dyn" {
				t.Fatalf("%s %q: compiled with type %q", kind, expr, typ)
			}
		}
	})
}

// FuzzEval evaluates random rules on random payloads: never a panic,
// every error wraps ErrRule, and every JSON result is valid JSON.
func FuzzEval(f *testing.F) {
	for i, s := range ruleSeeds {
		f.Add(s, []byte(bodySeeds[i%len(bodySeeds)]))
	}
	f.Fuzz(func(t *testing.T, expr string, body []byte) {
		in := &Input{
			Headers:        map[string]string{"x-tenant": "acme", "x-user": "u-1"},
			ID:             "req-1",
			App:            "app",
			Deployment:     "dep",
			Upstream:       "up",
			Body:           body,
			UpstreamOutput: body,
		}
		ctx := context.Background()
		if p, err := Compile(expr, Condition); err == nil {
			if _, err := p.Bool(ctx, in); err != nil && !errors.Is(err, ErrRule) {
				t.Fatalf("condition %q: error %v does not wrap ErrRule", expr, err)
			}
		}
		if p, err := Compile(expr, Transform); err == nil {
			out, err := p.JSON(ctx, in)
			if err != nil {
				if !errors.Is(err, ErrRule) {
					t.Fatalf("transform %q: error %v does not wrap ErrRule", expr, err)
				}
				return
			}
			if !json.Valid(out) {
				t.Fatalf("transform %q: invalid JSON %q", expr, out)
			}
		}
	})
}

// FuzzParseJSON checks parseJSON against encoding/json on random bytes,
// and that what it parses encodes back to JSON that reads the same.
func FuzzParseJSON(f *testing.F) {
	for _, s := range append(jsonCorpus, bodySeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParseJSON(t, b)
		v, ok := parseJSON(b)
		if !ok {
			return
		}
		e := encoder{ctx: t.Context()}
		out, err := e.appendJSON(nil, adapter.NativeToValue(v), 0)
		if err != nil {
			t.Fatalf("%q: parsed value does not encode: %v", b, err)
		}
		again, ok := parseJSON(out)
		if !ok || !reflect.DeepEqual(again, v) {
			t.Fatalf("%q encodes as %q, which parses as %#v, not %#v", b, out, again, v)
		}
	})
}
