package bundle

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/platform/spec"
)

func typeOf[T any](encoding string) Type {
	t := reflect.TypeFor[T]()
	return Type{Go: t.String(), ID: TypeID(t), Encoding: encoding, Schema: SchemaOf(t)}
}

func handleOf[In, Out any](in, out string) Arg {
	i, o := typeOf[In](in), typeOf[Out](out)
	return Arg{Type: Type{Go: "*serve.Handle[...]", ID: "handle"}, Handle: true, Input: &i, Output: &o}
}

func valueOf[T any]() Arg { return Arg{Type: typeOf[T](EncodingJSON)} }

// testManifest is a binary of six handlers, written by hand.
func testManifest() Manifest {
	return Manifest{
		Format: FormatVersion,
		SDK:    SDK{Language: LanguageGo, Version: "(devel)", Runtime: "go1.26", Platform: "linux/amd64"},
		Handlers: []Handler{
			{Name: "Add", Kind: KindUnary, Input: typeOf[int](EncodingJSON), Output: typeOf[int](EncodingJSON), Args: []Arg{valueOf[int]()}},
			{Name: "Front", Kind: KindUnary, Input: typeOf[int](EncodingJSON), Output: typeOf[int](EncodingJSON), Args: []Arg{handleOf[int, int](EncodingJSON, EncodingJSON)}},
			{Name: "Upper", Kind: KindUnary, Input: typeOf[string](EncodingText), Output: typeOf[string](EncodingText), Func: true},
			{Name: "Embed", Kind: KindBatch, Input: typeOf[[]byte](EncodingBinary), Output: typeOf[[]float32](EncodingJSON), Func: true},
			{Name: "Points", Kind: KindStream, Input: typeOf[point](EncodingJSON), Output: typeOf[point](EncodingJSON), Args: []Arg{valueOf[point](), valueOf[[]string]()}, Reconfigure: true},
			{Name: "Web", Kind: KindHTTP, Input: typeOf[[]byte](EncodingBinary), Output: typeOf[[]byte](EncodingBinary), Args: []Arg{handleOf[int, int](EncodingJSON, EncodingJSON)}},
		},
	}
}

const head = "name: a\nroute_prefix: /a\ningress: F\ndeployments:\n"

// Check names each problem with its place in the file, on a manifest read
// back from its JSON as on the one it was written from.
func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"ok", head + "  - {name: F, handler: Front, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [5]}\n", nil},
		{"unknown handler", head + "  - name: F\n    handler: Nope\n",
			[]string{`a.yaml:6:14: deployments[0].handler: unknown handler "Nope" (this binary has [Add Embed Front Points Upper Web])`}},
		{"unknown handler by name", head + "  - name: F\n",
			[]string{`a.yaml:5:5: deployments[0].handler: unknown handler "F" (this binary has [Add Embed Front Points Upper Web])`}},
		{"arg count", head + "  - name: F\n    handler: Add\n",
			[]string{`a.yaml:5:5: deployments[0]: args: handler Add takes 1 arguments, got 0`}},
		{"function with args", head + "  - name: F\n    handler: Upper\n    args: [1]\n",
			[]string{`a.yaml:7:11: deployments[0]: args: handler Upper is a function and takes no arguments`}},
		{"arg type", head + "  - name: F\n    handler: Add\n    args: [x]\n",
			[]string{`a.yaml:7:12: deployments[0]: args[0]: value "x" does not fit parameter type int: json: cannot unmarshal string into Go value of type int`}},
		{"struct field type", head + "  - name: F\n    handler: Points\n    args:\n      - {x: 1, y: 2}\n      - [a, 3]\n",
			[]string{`a.yaml:9:9: deployments[0]: args[1]: value ["a",3] does not fit parameter type []string: json: cannot unmarshal number into Go value of type string`}},
		{"nested field", head + "  - name: F\n    handler: Points\n    args: [{x: one}, []]\n",
			[]string{`a.yaml:7:12: deployments[0]: args[0]: value {"x":"one"} does not fit parameter type bundle.point: json: cannot unmarshal string into Go struct field point.x of type int`}},
		{"value for a handle", head + "  - name: F\n    handler: Front\n    args: [3]\n",
			[]string{`a.yaml:7:12: deployments[0]: args[0]: parameter is a handle, give {handle: DEPLOYMENT}`}},
		{"handle for a value", head + "  - {name: F, handler: Add, args: [{handle: U}]}\n  - {name: U, handler: Upper}\n",
			[]string{`a.yaml:5:36: deployments[0]: args[0]: parameter type int is not a *serve.Handle, cannot take bound deployment Upper`}},
		{"handle of the wrong type", head + "  - {name: F, handler: Front, args: [{handle: U}]}\n  - {name: U, handler: Upper}\n",
			[]string{`a.yaml:5:38: deployments[0]: args[0]: parameter *serve.Handle[...] does not match deployment Upper, which takes string and returns string`}},
		{"handle to an unknown handler", head + "  - {name: F, handler: Front, args: [{handle: N}]}\n  - {name: N, handler: Nope}\n",
			[]string{`a.yaml:6:24: deployments[1].handler: unknown handler "Nope" (this binary has [Add Embed Front Points Upper Web])`}},
		{"batching", head + "  - name: F\n    handler: Upper\n    batching: {max_batch_size: 4}\n",
			[]string{`a.yaml:7:15: deployments[0].batching: handler Upper is not a batch handler (write it with serve.BatchFunc)`}},
		{"batching a batch handler", head + "  - name: F\n    handler: Embed\n    batching: {max_batch_size: 4}\n", nil},
		{"transform into numbers", head + "  - {name: F, kind: cel}\n  - {name: A, handler: Add, args: [1]}\nedges:\n  - {from: F, to: A, transform: '\"s\"'}\n",
			[]string{`a.yaml:8:33: edges[0].transform: yields string, but Add takes int (want int or uint)`}},
		{"transform into a struct", head + "  - {name: F, kind: cel}\n  - {name: P, handler: Points, args: [{}, []]}\nedges:\n  - {from: F, to: P, transform: '[1]'}\n",
			[]string{`a.yaml:8:33: edges[0].transform: yields list(int), but Points takes bundle.point (want map)`}},
		{"transform into text and bytes", head + "  - {name: F, kind: cel}\n  - {name: U, handler: Upper}\n  - {name: E, handler: Embed}\n  - {name: V, handler: Upper}\nedges:\n  - {from: F, to: U, transform: '\"s\"'}\n  - {from: F, to: E, transform: '{\"a\": 1}'}\n  - {from: F, to: V, transform: 'body'}\n", nil},
		{"transform syntax", head + "  - {name: F, kind: cel}\n  - {name: U, handler: Upper}\nedges:\n  - {from: F, to: U, transform: '1 +'}\n",
			nil}, // refused by spec validation with CEL's own message; Check passes it on
		{"model and cel deployments", head + "  - {name: F, kind: cel}\n  - {name: M, kind: model, model: {names: [m]}}\nedges:\n  - {from: F, to: M}\n", nil},
		{"http ingress", head + "  - {name: F, handler: Web, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [1]}\n", nil},
		{"http ingress elsewhere", head + "  - {name: F, handler: Front, args: [{handle: W}]}\n  - {name: W, handler: Web, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [1]}\n",
			[]string{
				`a.yaml:5:38: deployments[0]: args[0]: deployment W runs HTTP ingress handler Web: it takes HTTP requests from the gateway only, not records along an edge or from a handle`,
				`a.yaml:6:24: deployments[1].handler: handler Web is an HTTP ingress (serve.HTTP): it can only be the application's ingress deployment, which is F`,
			}},
		{"edge into an http handler", head + "  - {name: F, kind: cel}\n  - {name: W, handler: Web, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [1]}\nedges:\n  - {from: F, to: W}\n",
			[]string{
				`a.yaml:9:5: edges[0]: deployment W runs HTTP ingress handler Web: it takes HTTP requests from the gateway only, not records along an edge or from a handle`,
				`a.yaml:6:24: deployments[1].handler: handler Web is an HTTP ingress (serve.HTTP): it can only be the application's ingress deployment, which is F`,
			}},
		{"edge from an http ingress", head + "  - {name: F, handler: Web, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [1]}\n  - {name: U, handler: Upper}\nedges:\n  - {from: F, to: U}\n",
			[]string{
				`a.yaml:9:5: edges[0]: deployment F runs HTTP ingress handler Web: its response answers the HTTP caller and cannot go along an edge: remove the edge and call U through a handle (a *serve.Handle parameter of Web's constructor, args: [{handle: U}])`,
			}},
		{"every problem", head + "  - {name: F, handler: Front, args: [{handle: U}]}\n  - {name: U, handler: Upper, batching: {max_batch_size: 2}}\n  - {name: X, handler: Gone}\nedges:\n  - {from: F, to: X}\n",
			[]string{
				`a.yaml:5:38: deployments[0]: args[0]: parameter *serve.Handle[...] does not match deployment Upper, which takes string and returns string`,
				`a.yaml:6:41: deployments[1].batching: handler Upper is not a batch handler (write it with serve.BatchFunc)`,
				`a.yaml:7:24: deployments[2].handler: unknown handler "Gone" (this binary has [Add Embed Front Points Upper Web])`,
			}},
	}
	m := testManifest()
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v\n%s", err, data)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			apps, err := spec.Parse("a.yaml", []byte(tc.yaml))
			if tc.name == "transform syntax" {
				if err == nil || !strings.Contains(err.Error(), "edges[0].transform") {
					t.Fatalf("Parse = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			markHTTP(apps[0], m)
			for _, mf := range []Manifest{m, decoded} {
				got := Check(apps[0], mf)
				if want := strings.Join(tc.want, "\n"); errString(got) != want {
					t.Fatalf("Check =\n%v\nwant\n%s", got, want)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCheckWrapsUnknownHandler(t *testing.T) {
	t.Parallel()
	app := &spec.App{Name: "a", RoutePrefix: "/a", Ingress: "F", Deployments: []spec.Deployment{{Name: "F", Handler: "Nope"}}}
	err := Check(app, testManifest())
	if !errors.Is(err, ErrUnknownHandler) {
		t.Fatalf("err = %v, want it to wrap ErrUnknownHandler", err)
	}
	// An app built in Go has no file: the field path alone.
	if want := `deployments[0].handler: unknown handler "Nope" (this binary has [Add Embed Front Points Upper Web])`; err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
}

// The platform marks an HTTP ingress deployment (spec.Deployment.HTTP)
// from the manifest; a mark on another kind of handler is refused.
func TestCheckHTTPMark(t *testing.T) {
	t.Parallel()
	app := &spec.App{Name: "a", RoutePrefix: "/a", Ingress: "F", Deployments: []spec.Deployment{{Name: "F", Handler: "Upper", HTTP: true}}}
	err := Check(app, testManifest())
	if want := "deployments[0]: marked as an HTTP ingress, but handler Upper is a unary handler: deploy the application again"; errString(err) != want {
		t.Fatalf("Check = %v, want %s", err, want)
	}
}

// markHTTP marks app's HTTP ingress deployments as the platform does
// when it pins their code (code.Resolver.Pin).
func markHTTP(app *spec.App, m Manifest) {
	for i := range app.Deployments {
		if h := m.Handler(app.Deployments[i].Handler); h != nil {
			app.Deployments[i].HTTP = h.ServesHTTP()
		}
	}
}

// An HTTP ingress the platform did not mark would be served as a plain
// route and refuse every record: Check refuses it, asking for a deploy
// that marks it (an image bundle's was missed so).
func TestCheckHTTPUnmarked(t *testing.T) {
	t.Parallel()
	apps, err := spec.Parse("a.yaml", []byte(head+"  - {name: F, handler: Web, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [1]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = Check(apps[0], testManifest())
	if want := "a.yaml:5:5: deployments[0]: handler Web is an HTTP ingress (serve.HTTP), but the deployment is not marked as one, so the gateway would call it as a plain route: deploy the application through the platform's API (sluice deploy), which marks it"; errString(err) != want {
		t.Fatalf("Check = %v, want %s", err, want)
	}
}

// A handle matches a deployment only with the same type: the same
// identity and schema, not the same name as Go prints it.
func TestCheckHandleTypeIdentity(t *testing.T) {
	t.Parallel()
	m := testManifest()
	other := typeOf[int](EncodingJSON)
	other.ID = "example.com/elsewhere.int" // prints as int, is not int
	m.Handlers = append(m.Handlers, Handler{Name: "Other", Kind: KindUnary, Input: other, Output: typeOf[int](EncodingJSON), Func: true})
	apps, err := spec.Parse("a.yaml", []byte(head+"  - {name: F, handler: Front, args: [{handle: O}]}\n  - {name: O, handler: Other}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = Check(apps[0], m)
	if err == nil || !strings.Contains(err.Error(), "does not match deployment Other, which takes int and returns int") {
		t.Fatalf("Check = %v", err)
	}
}

// A Python deployment states no payload types (TypeAny): a Go handle to
// it fits, and so does its handle to a Go deployment.
func TestCheckHandleToAndFromPython(t *testing.T) {
	t.Parallel()
	m := testManifest()
	anyT := Type{Go: "any", ID: TypeAny, Encoding: EncodingJSON, Schema: &Schema{}}
	m.Handlers = append(m.Handlers,
		Handler{Name: "Py", Kind: KindUnary, Input: anyT, Output: anyT, Func: true},
		Handler{Name: "PyCaller", Kind: KindUnary, Input: anyT, Output: anyT,
			Args: []Arg{{Type: Type{Go: "DeploymentHandle", ID: "python:sluice.serve.DeploymentHandle"}, Handle: true, Input: &anyT, Output: &anyT}}})
	apps, err := spec.Parse("a.yaml", []byte(head+"  - {name: F, handler: Front, args: [{handle: P}]}\n  - {name: P, handler: PyCaller, args: [{handle: G}]}\n  - {name: G, handler: Front, args: [{handle: Q}]}\n  - {name: Q, handler: Py}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(apps[0], m); err != nil {
		t.Fatalf("Check = %v", err)
	}
}

// A Python class no graph binds is described by its constructor's
// signature: parameters with defaults are optional, and one without a
// type annotation (TypeAny) takes a value or a handle.
func TestCheckOptionalAndUntypedArgs(t *testing.T) {
	t.Parallel()
	m := testManifest()
	anyT := Type{Go: "any", ID: TypeAny, Encoding: EncodingJSON, Schema: &Schema{}}
	intT := typeOf[int](EncodingJSON)
	m.Handlers = append(m.Handlers, Handler{Name: "Scaled", Kind: KindUnary, Input: anyT, Output: anyT,
		Args: []Arg{{Type: anyT}, {Type: intT, Optional: true}, {Type: anyT, Optional: true}}})
	for _, tc := range []struct{ args, want string }{
		{"[{handle: G}]", ""},
		{"[{handle: G}, 5]", ""},
		{"[1, 5, {handle: G}]", ""},
		{"[]", "args: handler Scaled takes 1 to 3 arguments, got 0"},
		{"[1, 2, 3, 4]", "args: handler Scaled takes 1 to 3 arguments, got 4"},
		{"[1, {handle: G}]", "args[1]: parameter type int is not a *serve.Handle, cannot take bound deployment Front"},
		{`[1, "five"]`, "args[1]: value \"five\" does not fit parameter type int"},
	} {
		apps, err := spec.Parse("a.yaml", []byte(head+"  - {name: F, handler: Scaled, args: "+tc.args+"}\n  - {name: G, handler: Front, args: [{handle: Q}]}\n  - {name: Q, handler: Scaled, args: [2]}\nedges:\n  - {from: F, to: G}\n"))
		if err != nil {
			t.Fatal(err)
		}
		err = Check(apps[0], m)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("args %s: Check = %v, want %q", tc.args, err, tc.want)
		}
	}
}
