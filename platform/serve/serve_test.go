package serve

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

type adder struct{ n int }

func (a *adder) Call(_ context.Context, x int) (int, error) { return x + a.n, nil }

type front struct{ h *Handle[int, int] }

func (f *front) Call(ctx context.Context, x int) (int, error) { return f.h.Remote(ctx, x).Result(ctx) }

var (
	add     = Type[int, int]("Add", func(n int) *adder { return &adder{n} })
	frontD  = Type[int, int]("Front", func(h *Handle[int, int]) *front { return &front{h} })
	upper   = Func("Upper", func(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil })
	twoArgs = Type[int, int]("Two", func(h *Handle[int, int], n int) (*front, error) { return &front{h}, nil })
)

func TestBindChecksConstructors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ingress *Bound
		wantErr string
	}{
		{"ok", frontD.Bind(add.Bind(1)), ""},
		{"too few args", add.Bind(), "constructor takes 1 arguments, Bind got 0"},
		{"function with args", upper.Bind(1), "is a function and takes no arguments"},
		{"value for a handle", frontD.Bind(3), "parameter is a handle"},
		{"handle of the wrong type", frontD.Bind(upper.Bind()), "does not match deployment Upper, which takes string and returns string"},
		{"value of the wrong type", add.Bind("one"), "does not decode into parameter type int"},
		{"bound where a value goes", twoArgs.Bind(add.Bind(1), add.Bind(2)), "is not a *serve.Handle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := App("a", "/a", tc.ingress)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// A deployment bound twice with different arguments becomes two
// deployments; the handles point at the right one.
func TestBindTwiceNamesApart(t *testing.T) {
	t.Parallel()
	outer := Type[int, int]("Outer", func(a, b *Handle[int, int]) *front { return &front{a} })
	app, err := App("b", "/b", outer.Bind(add.Bind(1), add.Bind(2)))
	if err != nil {
		t.Fatal(err)
	}
	s := app.Spec()
	if len(s.Deployments) != 3 || s.Deployments[1].Name != "Add" || s.Deployments[2].Name != "Add-1" {
		t.Fatalf("deployments = %+v", s.Deployments)
	}
	if a := s.Deployments[0].Args; a[0].Handle != "Add" || a[1].Handle != "Add-1" {
		t.Fatalf("handles = %+v", a)
	}
	if string(s.Deployments[2].Args[0].Value) != "2" {
		t.Fatalf("Add-1 args = %s", s.Deployments[2].Args[0].Value)
	}
}

func TestRegistryChecksYAML(t *testing.T) {
	t.Parallel()
	reg, err := NewRegistry(nil, add, frontD, upper)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"ok", "name: a\nroute_prefix: /a\ningress: F\ndeployments:\n  - {name: F, handler: Front, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [5]}\n", ""},
		{"unknown handler", "name: a\nroute_prefix: /a\ningress: F\ndeployments:\n  - {name: F, handler: Nope}\n", `unknown handler "Nope"`},
		{"arg count", "name: a\nroute_prefix: /a\ningress: A\ndeployments:\n  - {name: A, handler: Add}\n", "takes 1 arguments, got 0"},
		{"arg type", "name: a\nroute_prefix: /a\ningress: A\ndeployments:\n  - {name: A, handler: Add, args: [x]}\n", "does not fit parameter type int"},
		{"handle type", "name: a\nroute_prefix: /a\ningress: F\ndeployments:\n  - {name: F, handler: Front, args: [{handle: U}]}\n  - {name: U, handler: Upper}\n", "does not match deployment Upper"},
		{"batching without batch handler", "name: a\nroute_prefix: /a\ningress: U\ndeployments:\n  - {name: U, handler: Upper, batching: {max_batch_size: 4}}\n", "is not a batch handler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			apps, err := spec.Parse("a.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = reg.Check(apps[0])
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Check = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if _, err := NewRegistry(nil, add, Func("Add", func(context.Context, int) (int, error) { return 0, nil })); err == nil {
		t.Fatal("two deployments named Add were accepted")
	}
}

func TestCodec(t *testing.T) {
	t.Parallel()
	b, ct, err := encode("Hola Dora")
	if err != nil || string(b) != "Hola Dora" || ct != ContentText {
		t.Fatalf("string: %q %q %v", b, ct, err)
	}
	b, ct, _ = encode([]byte{0, 1})
	if string(b) != "\x00\x01" || ct != ContentBinary {
		t.Fatalf("bytes: %q %q", b, ct)
	}
	b, ct, _ = encode(map[string]int{"a": 1})
	if string(b) != `{"a":1}` || ct != ContentJSON {
		t.Fatalf("json: %q %q", b, ct)
	}
	if v, err := decode[int]([]byte("12")); err != nil || v != 12 {
		t.Fatalf("int: %v %v", v, err)
	}
	if v, _ := decode[string]([]byte(`"quoted"`)); v != `"quoted"` {
		t.Fatalf("strings travel raw, got %q", v)
	}
	_, err = decode[int]([]byte("twelve"))
	if streams.CodeOf(err) != streams.CodeInvalidArgument || !strings.Contains(err.Error(), `decode int from "twelve"`) {
		t.Fatalf("bad int: %v", err)
	}
	if _, err := decode[int](make([]byte, 100)); !strings.Contains(err.Error(), "(100 bytes)") {
		t.Fatalf("long payloads are cut in errors: %v", err)
	}
	var raw json.RawMessage
	if raw, _ = decode[json.RawMessage]([]byte(`{"x":1}`)); string(raw) != `{"x":1}` {
		t.Fatalf("raw: %s", raw)
	}
}
