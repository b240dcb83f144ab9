package cel

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestConditionType checks that a condition must be bool or dyn, and
// that the error names the type it is.
func TestConditionType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want string // part of the error; "" when the rule compiles
	}{
		{`true`, ""},
		{`request.headers["x-tenant"] == "acme"`, ""},
		{`body.flag`, ""},          // dyn: checked at run time
		{`upstream.output.ok`, ""}, // dyn
		{`inputs.x.data[0]`, ""},   // dyn element of list(dyn)
		{`body.x + 1`, "this rule is int"},
		{`"a"`, "this rule is string"},
		{`1.5`, "this rule is double"},
		{`request.headers`, "this rule is map(string, string)"},
		{`inputs.x.shape`, "this rule is list(int)"},
		{`request`, "this rule is sluice.Request"},
		{`optional.of(true)`, "this rule is optional_type(bool)"},
		{`null`, "this rule is null"},
		{`body ? 1 : 2`, "this rule is int"},
	}
	for _, tt := range tests {
		p, err := Compile(tt.expr, Condition)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.expr, err)
			} else if typ := p.Type(); typ != "bool" && typ != "dyn" {
				t.Errorf("%s: condition of type %s", tt.expr, typ)
			}
			continue
		}
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a *CompileError", tt.expr, err)
			continue
		}
		if !strings.Contains(ce.Msg, "a condition must be bool") || !strings.Contains(ce.Msg, tt.want) {
			t.Errorf("%s: error %q, want it to say %q", tt.expr, ce.Msg, tt.want)
		}
		// Any type is a transform.
		if _, err := Compile(tt.expr, Transform); err != nil {
			t.Errorf("%s as a transform: %v", tt.expr, err)
		}
	}
}

// TestType checks the checked output types Program.Type reports.
func TestType(t *testing.T) {
	t.Parallel()
	tests := []struct{ expr, want string }{
		{`1 == 1`, "bool"},
		{`"a" + request.id`, "string"},
		{`body`, "dyn"},
		{`{"name": body.name, "lang": body.language.lowerAscii()}`, "map(string, dyn)"},
		{`{"a": 1}`, "map(string, int)"},
		{`inputs.x.shape`, "list(int)"},
		{`inputs.x.data`, "list(dyn)"},
		{`inputs`, "map(string, sluice.Tensor)"},
		{`upstream.outputs`, "map(string, sluice.Tensor)"},
		{`bucket(request.id, 10)`, "int"},
		{`request.id.split("-")`, "list(string)"},
	}
	for _, tt := range tests {
		p, err := Compile(tt.expr, Transform)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		if got := p.Type(); got != tt.want {
			t.Errorf("%s: Type() = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestCompileErrors checks what does not compile, and that errors locate
// the problem by line and column within the rule.
func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr         string
		line, column int
		msg          string
	}{
		{"1 +", 1, 4, "Syntax error"},
		{"[1, 2", 1, 6, "Syntax error"},
		{"a b", 1, 3, "Syntax error"},
		{`"abc`, 1, 1, "Syntax error"},
		{"request.id == \"a\" &&\n  foo", 2, 3, "undeclared reference to 'foo'"},
		{"body.x +\n\n    request.nope", 3, 12, "undefined field 'nope'"},
		{`request.heders["x"] == "a"`, 1, 8, "undefined field 'heders'"},
		{`upstream.outptu`, 1, 9, "undefined field 'outptu'"},
		{`inputs.x.dtype == "FP32"`, 1, 9, "undefined field 'dtype'"},
		{`request.headers["a"] == 1`, 1, 22, "no matching overload for '_==_'"},
		{`bucket(1, 2) == 0`, 1, 7, "no matching overload for 'bucket'"},
		{`bucket("a") == 0`, 1, 7, "no matching overload for 'bucket'"},
		{`nosuch(1)`, 1, 7, "undeclared reference to 'nosuch'"},
		{`sluice.Request{id: "x"} == request`, 1, 15, "rules cannot construct messages"},
		{`google.protobuf.Int64Value{value: 1} == 1`, 1, 27, "rules cannot construct messages"},
		{`body.s.matches("[")`, 1, 16, "invalid matches argument"},
		{`duration("1x") > duration("1s")`, 1, 10, "invalid duration argument"},
		{`timestamp("nope") == timestamp("nope")`, 1, 11, "invalid timestamp argument"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.expr, Condition)
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Errorf("%q: error %v is not a *CompileError", tt.expr, err)
			continue
		}
		if ce.Line != tt.line || ce.Column != tt.column || !strings.Contains(ce.Msg, tt.msg) {
			t.Errorf("%q: %d:%d %q, want %d:%d %q", tt.expr, ce.Line, ce.Column, ce.Msg, tt.line, tt.column, tt.msg)
		}
		if want := fmt.Sprintf("line %d, column %d: ", tt.line, tt.column); !strings.HasPrefix(ce.Error(), want) {
			t.Errorf("%q: Error() = %q, want the prefix %q", tt.expr, ce.Error(), want)
		}
		if errors.Is(err, ErrRule) {
			t.Errorf("%q: a compile error wraps ErrRule", tt.expr)
		}
	}
}

// TestCompileLimits checks the size limit and kinds.
func TestCompileLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("1 + ", MaxExprSize/4) + "1 == 2"
	var ce *CompileError
	if _, err := Compile(long, Condition); !errors.As(err, &ce) || !strings.Contains(ce.Msg, "longer than") {
		t.Errorf("rule of %d characters: %v", len(long), err)
	}
	deep := strings.Repeat("[", 1000) + strings.Repeat("]", 1000)
	if _, err := Compile(deep, Transform); !errors.As(err, &ce) {
		t.Errorf("rule nested 1000 deep: %v, want a compile error", err)
	}
	for _, k := range []Kind{0, 3} {
		if _, err := Compile("true", k); err == nil || !strings.Contains(err.Error(), "unknown kind") {
			t.Errorf("kind %d: %v", k, err)
		}
	}
	if Condition.String() != "condition" || Transform.String() != "transform" || Kind(9).String() != "Kind(9)" {
		t.Errorf("Kind.String: %s %s %s", Condition, Transform, Kind(9))
	}
}

// TestCache checks that the same text and kind give the same Program,
// also when compiled concurrently, and another kind another Program.
func TestCache(t *testing.T) {
	t.Parallel()
	const expr = `request.headers["x-cache-test"] == "1"`
	a, err := Compile(expr, Condition)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(expr, Condition)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("the same rule compiled twice gave two programs")
	}
	c, err := Compile(expr, Transform)
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Error("a condition and a transform share a program")
	}

	// A new text compiled by many goroutines at once: one program.
	fresh := `request.id == "concurrent-cache-test"`
	var wg sync.WaitGroup
	progs := make([]*Program, 16)
	for i := range progs {
		wg.Go(func() {
			p, err := Compile(fresh, Condition)
			if err != nil {
				t.Error(err)
			}
			progs[i] = p
		})
	}
	wg.Wait()
	for _, p := range progs[1:] {
		if p != progs[0] {
			t.Fatal("concurrent compiles of one rule gave different programs")
		}
	}
}

// TestCacheBound compiles more distinct rules than the cache keeps: it
// stays within its bound. (Not parallel: it evicts other tests' programs.)
func TestCacheBound(t *testing.T) {
	for i := range maxCached + 10 {
		if _, err := Compile(fmt.Sprintf("request.id == %q", fmt.Sprint("bound-", i)), Condition); err != nil {
			t.Fatal(err)
		}
	}
	cache.RLock()
	n := len(cache.m)
	cache.RUnlock()
	if n > maxCached {
		t.Fatalf("cache holds %d programs, more than %d", n, maxCached)
	}
}
