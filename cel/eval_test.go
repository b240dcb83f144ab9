package cel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// list20 is the CEL list [1, ..., 20].
var list20 = func() string {
	var b strings.Builder
	b.WriteString("[")
	for i := 1; i <= 20; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, i)
	}
	b.WriteString("]")
	return b.String()
}()

// nested returns depth comprehensions over list20 nested in each other:
// 20^depth iterations.
func nested(depth int) string {
	body := "x1"
	for i := depth; i >= 1; i-- {
		body = fmt.Sprintf("%s.map(x%d, %s)", list20, i, body)
	}
	return body
}

// doubling returns a rule whose value is start concatenated with itself
// n times, nested in single-element lists: 2^n copies of start.
func doubling(start string, n int) string {
	e := fmt.Sprintf("a%d + a%d", n, n)
	for i := n; i > 0; i-- {
		e = fmt.Sprintf("[a%d + a%d].map(a%d, %s)", i-1, i-1, i, e)
	}
	return fmt.Sprintf("[%s].map(a0, %s)", start, e)
}

// TestRuntimeErrors checks that what fails at run time returns an error
// wrapping ErrRule that says why, from Bool and JSON alike.
func TestRuntimeErrors(t *testing.T) {
	t.Parallel()
	big := `{"big": "` + strings.Repeat("a", 1<<20) + `"}`
	in := &Input{
		Headers: map[string]string{"x-tenant": "acme"},
		ID:      "req-1",
		Body:    []byte(`{"name": "Ada", "score": 0.7, "tags": ["a"]}`),
	}
	tests := []struct {
		name string
		expr string
		kind Kind
		in   *Input
		want string
	}{
		{"missing header", `request.headers["x-user"] == "bob"`, Condition, in, "no such key: x-user"},
		{"missing body field", `body.country == "FR"`, Condition, in, "no such key: country"},
		{"field of null body", `body.country == "FR"`, Condition, &Input{}, "no such key: country"},
		{"missing tensor", `inputs.x.data[0] > 0.5`, Condition, in, "no such key: x"},
		{"index out of range", `body.tags[3] == "a"`, Condition, in, "index out of bounds: 3"},
		{"wrong type", `body.name + 1 == 2`, Condition, in, "no such overload"},
		{"wrong comparison", `body.score > "a"`, Condition, in, "no such overload"},
		{"bad conversion", `int(body.name) > 1`, Condition, in, "type conversion error from 'string' to 'int'"},
		{"division by zero", `1 / (size(body.tags) - 1) == 0`, Condition, in, "division by zero"},
		{"int overflow", `9223372036854775807 + size(body.tags) > 0`, Condition, in, "overflow"},
		{"bucket n = 0", `bucket(request.id, 0) == 0`, Condition, in, "bucket: n must be positive, got 0"},
		{"bucket n < 0", `bucket(request.id, size(body.tags) - 2) == 0`, Condition, in, "bucket: n must be positive, got -1"},
		{"condition not bool", `body.name`, Condition, in, "condition is string, not bool"},
		{"condition null", `body.nothing_here_is_null`, Condition, &Input{Body: []byte(`{"nothing_here_is_null": null}`)},
			"condition is null_type, not bool"},
		{"cost: nested comprehensions", nested(5) + ".size() > 0", Condition, in, "cost limit exceeded"},
		{"cost: the issue's example", `[1,2,3].map(x, ` + nested(4) + `).size() > 0`, Condition, in, "cost limit exceeded"},
		{"cost: long strings", list20 + `.map(i, body.big + body.big).size() > 0`, Condition,
			&Input{Body: []byte(big)}, "cost limit exceeded"},
		{"cost: transform", nested(5), Transform, in, "cost limit exceeded"},
		{"cost: doubling a JSON string", doubling(`body.name`, 40) + ".size() > 0", Condition, in, "cost limit exceeded"},
		{"cost: doubling a string", doubling(`request.id`, 40) + ".size() > 0", Condition, in, "cost limit exceeded"},
		{"cost: quadratic in", `body.list.all(x, x in body.list)`, Condition,
			&Input{Body: []byte(`{"list": [` + strings.Repeat("1,", 20000) + "2]}")}, "cost limit exceeded"},
		{"cost: doubling a list", doubling(`[1]`, 40), Transform, in, "cost limit exceeded"},
		{"size: JSON too large", list20 + `.map(i, body.big)`, Transform, &Input{Body: []byte(big)},
			"result encodes to more than 16777216 bytes of JSON"},
		{"NaN", `{"x": 0.0 / 0.0}`, Transform, in, "NaN cannot be encoded as JSON"},
		{"infinity", `[1.0 / 0.0]`, Transform, in, "+Inf cannot be encoded as JSON"},
		{"type value", `{"t": type(body)}`, Transform, in, "type cannot be encoded as JSON"},
		{"keys of one text", `{1: "a", "1": "b"}`, Transform, in, `two keys that encode as "1"`},
		{"double key", `{1.5: "a"}`, Transform, in, "map key of type double cannot be encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(tt.expr, tt.kind)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if tt.kind == Condition {
				_, err = p.Bool(t.Context(), tt.in)
			} else {
				var out []byte
				out, err = p.JSON(t.Context(), tt.in)
				if out != nil {
					t.Errorf("output %q with the error", out)
				}
			}
			wantRuleError(t, err, tt.want)
		})
	}
}

// TestCostLimitIsGenerous checks that ordinary work stays under the
// limit: 8,000 iterations, and a rule over a 1 MiB string.
func TestCostLimitIsGenerous(t *testing.T) {
	t.Parallel()
	big := []byte(`{"big": "` + strings.Repeat("a", 1<<20) + `"}`)
	for _, tt := range []struct {
		expr string
		in   *Input
	}{
		{nested(3) + ".size() == 20", nil},
		{`body.big.size() > 0 && body.big.startsWith("a")`, &Input{Body: big}},
	} {
		p, err := Compile(tt.expr, Condition)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := p.Bool(t.Context(), tt.in); err != nil || !ok {
			t.Errorf("%.60s: %v, %v", tt.expr, ok, err)
		}
	}
}

// TestCancel checks that a context stops an evaluation: one cancelled
// before it starts, and one whose deadline passes in a comprehension of
// 160,000 iterations (under a cost limit high enough not to stop it
// first). The errors wrap the context's, not ErrRule.
func TestCancel(t *testing.T) {
	t.Parallel()
	p, err := compile(nested(4)+".size() > 0", Condition, math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}

	// Without a deadline, the evaluation takes long enough to cancel.
	start := time.Now()
	if _, err := p.Bool(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	full := time.Since(start)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = p.Bool(ctx, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrRule) {
		t.Errorf("cancelled context: %v", err)
	}

	ctx, cancel = context.WithTimeout(t.Context(), full/20)
	defer cancel()
	start = time.Now()
	_, err = p.Bool(ctx, nil)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrRule) {
		t.Errorf("deadline in a comprehension: %v", err)
	}
	if took > full/2 {
		t.Errorf("interrupted after %v; the full evaluation takes %v", took, full)
	}

	cause := errors.New("replica stopping")
	ctx, cancelCause := context.WithCancelCause(t.Context())
	cancelCause(cause)
	if _, err := p.JSON(ctx, nil); !errors.Is(err, cause) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled with a cause: %v", err)
	}
}

// TestConcurrent evaluates several programs on shared Inputs from many
// goroutines (run with -race): the lazy parses happen once and every
// evaluation gets the same answer.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	rules := map[string]string{
		`body.score > 0.5 && request.headers["x-tenant"] == "acme"`: "true",
		`{"n": body.name, "x": inputs.size()}`:                      `{"n":"Ada","x":0}`,
		`upstream.output.label`:                                     `"cat"`,
		`bucket(request.id, 100)`:                                   "19",
	}
	inputs := make([]*Input, 4)
	for i := range inputs {
		inputs[i] = &Input{
			Headers:        map[string]string{"X-Tenant": "acme"},
			ID:             "req-7",
			Body:           []byte(`{"score": 0.9, "name": "Ada"}`),
			UpstreamOutput: []byte(`{"label": "cat"}`),
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				in := inputs[(g+i)%len(inputs)]
				for expr, want := range rules {
					got, err := evalJSON(t, expr, in)
					if err != nil || got != want {
						t.Errorf("%s = %s, %v; want %s", expr, got, err, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestRecoverRule checks that a panic under evaluation becomes an error
// wrapping ErrRule.
func TestRecoverRule(t *testing.T) {
	t.Parallel()
	err := func() (err error) {
		defer recoverRule(&err)
		var m map[string]int
		m["boom"] = 1 // assignment to a nil map panics
		return nil
	}()
	wantRuleError(t, err, "rule evaluation failed: assignment to entry in nil map")
}

// TestStringAndBool checks the typed results: String wants a string,
// Bool a bool, each failing with ErrRule on another type.
func TestStringAndBool(t *testing.T) {
	t.Parallel()
	in := &Input{Headers: map[string]string{"x-user": "u-1"}, Body: []byte(`{"flag": true, "n": 1}`)}
	key, err := Compile(`request.headers["x-user"]`, Transform)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := key.String(t.Context(), in); err != nil || s != "u-1" {
		t.Errorf("String = %q, %v", s, err)
	}
	n, err := Compile(`bucket(request.headers["x-user"], 10)`, Transform)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.String(t.Context(), in)
	wantRuleError(t, err, "transform is int, not string")
	_, err = n.Bool(t.Context(), in)
	wantRuleError(t, err, "transform is int, not bool")
	flag, err := Compile(`body.flag`, Condition)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := flag.Bool(t.Context(), in); err != nil || !ok {
		t.Errorf("Bool = %v, %v", ok, err)
	}
	if js, err := flag.JSON(t.Context(), in); err != nil || string(js) != "true" {
		t.Errorf("JSON of a condition = %s, %v", js, err)
	}
}
