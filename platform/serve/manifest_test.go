package serve_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/examples/bench"
	"github.com/sluice-serve/sluice/examples/chain"
	"github.com/sluice-serve/sluice/examples/hello"
	"github.com/sluice-serve/sluice/examples/stream"
	"github.com/sluice-serve/sluice/examples/tensors"
	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
)

// Cmd is a struct payload, as the e2e suite's Faults deployment takes.
type Cmd struct {
	Echo    string `json:"echo"`
	Panic   bool   `json:"panic"`
	SleepMS int    `json:"sleep_ms"`
}

type tagger struct{ tag string }

func (t *tagger) Call(_ context.Context, s string) (string, error) { return t.tag + "[" + s + "]", nil }

type greeter struct{ greeting string }

func (g *greeter) Call(_ context.Context, s string) (string, error) { return g.greeting + s, nil }
func (g *greeter) Reconfigure(_ context.Context, c json.RawMessage) error {
	return json.Unmarshal(c, &g.greeting)
}

type fan struct{ h *serve.Handle[Cmd, string] }

func (f *fan) Call(ctx context.Context, n int) (string, error) {
	return f.h.Remote(ctx, Cmd{}).Result(ctx)
}

type modelCaller struct {
	m *serve.Handle[*oip.InferRequest, *oip.InferResponse]
}

type modelIn struct {
	Model string    `json:"model"`
	X     []float32 `json:"x"`
}

func (c *modelCaller) Call(context.Context, modelIn) (float32, error) { return 0, nil }

// Config is a constructor argument of several fields.
type Config struct {
	Threshold float64           `json:"threshold"`
	Labels    []string          `json:"labels"`
	Limits    map[string]int    `json:"limits"`
	Every     time.Duration     `json:"every"`
	Nested    *struct{ N int8 } `json:"nested"`
}

type scorer struct{}

func (scorer) Call(context.Context, Cmd) (float64, error) { return 0, nil }
func (scorer) CheckHealth(context.Context) error          { return nil }

type counter struct{}

func (counter) Stream(_ context.Context, n int, send func(int) error) error { return nil }

// The handlers of the e2e suite's binary, and one of each other shape.
var (
	echo        = serve.Func("Echo", func(_ context.Context, s string) (string, error) { return s, nil })
	tag         = serve.Type[string, string]("Tag", func(tag string) *tagger { return &tagger{tag} })
	batchSizer  = serve.BatchFunc("BatchSizer", func(_ context.Context, ins []string) ([]string, error) { return ins, nil })
	greeterD    = serve.Type[string, string]("Greeter", func() *greeter { return &greeter{} })
	faults      = serve.Func("Faults", func(_ context.Context, c Cmd) (string, error) { return c.Echo, nil })
	fanD        = serve.Type[int, string]("Fan", func(h *serve.Handle[Cmd, string]) *fan { return &fan{h} })
	modelCallD  = serve.Type[modelIn, float32]("ModelCaller", func(m *serve.Handle[*oip.InferRequest, *oip.InferResponse]) *modelCaller { return &modelCaller{m} })
	bytesD      = serve.Func("Bytes", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	scorerD     = serve.Type[Cmd, float64]("Scorer", func(c Config, every []int) (scorer, error) { return scorer{}, nil })
	counterD    = serve.StreamType[int, int]("Counter", func(limit uint8) counter { return counter{} })
	countFuncD  = serve.StreamFunc("CountFunc", func(_ context.Context, n int, send func(int) error) error { return nil })
	testHandles = []*serve.Deployment{bench.Noop, echo, tag, batchSizer, greeterD, faults, fanD, modelCallD, bytesD, scorerD, counterD, countFuncD}
)

// testRegistry is the stock binary's registry and the e2e suite's
// handlers, with a few more shapes.
func testRegistry(t testing.TB) *serve.Registry {
	t.Helper()
	apps := append([]*serve.Application{hello.App(), chain.App(), stream.App()}, tensors.Apps()...)
	reg, err := serve.NewRegistry(apps, testHandles...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestManifestHandlers(t *testing.T) {
	t.Parallel()
	m := testRegistry(t).Manifest()
	type want struct {
		kind, in, out, inEnc string
		fn                   bool
		args                 []string // a handle as "handle IN->OUT"
		reconfigure, health  bool
	}
	const jsonEnc, text = bundle.EncodingJSON, bundle.EncodingText
	tests := map[string]want{
		"Adder":              {kind: "unary", in: "int", out: "int", inEnc: jsonEnc, args: []string{"int"}},
		"Ingress":            {kind: "unary", in: "int", out: "int", inEnc: jsonEnc, args: []string{"handle int->int", "handle int->int"}},
		"LanguageClassifier": {kind: "unary", in: "hello.Request", out: "string", inEnc: jsonEnc, args: []string{"handle string->string", "handle string->string"}},
		"SpanishResponder":   {kind: "unary", in: "string", out: "string", inEnc: text, fn: true},
		"Streamer":           {kind: "stream", in: "int", out: "int", inEnc: jsonEnc, args: []string{"string"}},
		"Caller":             {kind: "stream", in: "int", out: "int", inEnc: jsonEnc, args: []string{"handle int->int"}},
		"CountFunc":          {kind: "stream", in: "int", out: "int", inEnc: jsonEnc, fn: true},
		"Counter":            {kind: "stream", in: "int", out: "int", inEnc: jsonEnc, args: []string{"uint8"}},
		"BatchSizer":         {kind: "batch", in: "string", out: "string", inEnc: text, fn: true},
		"Doubler":            {kind: "unary", in: "*oip.InferRequest", out: "*oip.InferResponse", inEnc: bundle.EncodingOIP, fn: true},
		"Noop":               {kind: "unary", in: "json.RawMessage", out: "json.RawMessage", inEnc: jsonEnc, fn: true},
		"Bytes":              {kind: "unary", in: "[]uint8", out: "[]uint8", inEnc: bundle.EncodingBinary, fn: true},
		"Greeter":            {kind: "unary", in: "string", out: "string", inEnc: text, reconfigure: true},
		"Scorer":             {kind: "unary", in: "serve_test.Cmd", out: "float64", inEnc: jsonEnc, args: []string{"serve_test.Config", "[]int"}, health: true},
		"Fan":                {kind: "unary", in: "int", out: "string", inEnc: jsonEnc, args: []string{"handle serve_test.Cmd->string"}},
		"ModelCaller":        {kind: "unary", in: "serve_test.modelIn", out: "float32", inEnc: jsonEnc, args: []string{"handle *oip.InferRequest->*oip.InferResponse"}},
	}
	var names []string
	for _, h := range m.Handlers {
		names = append(names, h.Name)
	}
	if !slices.IsSorted(names) || len(names) != 11+len(testHandles) {
		t.Fatalf("handlers = %v", names)
	}
	for name, w := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := m.Handler(name)
			if h == nil {
				t.Fatalf("no handler %s", name)
			}
			var args []string
			for _, a := range h.Args {
				if a.Handle {
					args = append(args, "handle "+a.Input.Go+"->"+a.Output.Go)
					if a.Schema != nil || a.Encoding != "" {
						t.Errorf("handle arg with a schema: %+v", a)
					}
					continue
				}
				args = append(args, a.Go)
				if a.Encoding != bundle.EncodingJSON || a.Schema == nil {
					t.Errorf("value arg %s: encoding %q, schema %v", a.Go, a.Encoding, a.Schema)
				}
			}
			got := want{kind: h.Kind, in: h.Input.Go, out: h.Output.Go, inEnc: h.Input.Encoding, fn: h.Func, args: args, reconfigure: h.Reconfigure, health: h.HealthCheck}
			if !equalWant(got, w) {
				t.Fatalf("handler %s =\n%+v\nwant\n%+v", name, got, w)
			}
		})
	}
	if len(m.Apps) != 6 || m.Apps[0].Name != "hello" || m.Apps[0].Ingress != "LanguageClassifier" {
		t.Fatalf("apps = %v", m.Apps)
	}
	if m.Format != bundle.FormatVersion || m.SDK.Language != "go" || m.SDK.Runtime == "" || m.SDK.Platform == "" || m.SDK.Version == "" {
		t.Fatalf("sdk = %+v", m.SDK)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	// The OIP types say so; a handle's types are the deployment's.
	if s := m.Handler("Doubler").Input.Schema; s.Sluice != "oip" {
		t.Fatalf("Doubler input schema = %+v", s)
	}
	in := m.Handler("Caller").Args[0].Input
	if in.ID != m.Handler("Streamer").Input.ID || in.ID != "int" {
		t.Fatalf("Caller's handle takes %+v", in)
	}
	if id := m.Handler("LanguageClassifier").Input.ID; id != "github.com/sluice-serve/sluice/examples/hello.Request" {
		t.Fatalf("hello.Request's identity = %q", id)
	}
}

func equalWant[T any](a, b T) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// A constructor that cannot be called is refused when the registry is
// built, not when a spec names it.
func TestNewRegistryRefusesConstructors(t *testing.T) {
	t.Parallel()
	for name, d := range map[string]*serve.Deployment{
		"not a function": serve.Type[int, int]("NotFunc", 3),
		"variadic":       serve.Type[int, int]("Variadic", func(xs ...int) *counter { return nil }),
		"three results":  serve.Type[int, int]("Three", func() (*counter, int, error) { return nil, 0, nil }),
	} {
		if _, err := serve.NewRegistry(nil, d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Check on a manifest read back from JSON refuses each bad spec with the
// file, line and column of the field, as the live registry does.
func TestCheckFromJSONPlacesErrors(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	m := decodedManifest(t, reg)
	const head = "name: a\nroute_prefix: /a\ningress: F\ndeployments:\n"
	tests := []struct{ name, yaml, want string }{
		{"unknown handler", head + "  - {name: F, handler: Nope}\n", `a.yaml:5:24: deployments[0].handler: unknown handler "Nope" (this binary has [`},
		{"arg count", head + "  - {name: F, handler: Adder}\n", "a.yaml:5:5: deployments[0]: args: handler Adder takes 1 arguments, got 0"},
		{"function with args", head + "  - {name: F, handler: Echo, args: [1]}\n", "a.yaml:5:36: deployments[0]: args: handler Echo is a function and takes no arguments"},
		{"arg type", head + "  - {name: F, handler: Adder, args: [x]}\n", `a.yaml:5:38: deployments[0]: args[0]: value "x" does not fit parameter type int: json: cannot unmarshal string into Go value of type int`},
		{"struct arg", head + "  - name: F\n    handler: Scorer\n    args:\n      - {threshold: 1, limits: {a: x}}\n      - []\n",
			`a.yaml:8:9: deployments[0]: args[0]: value {"threshold":1,"limits":{"a":"x"}} does not fit parameter type serve_test.Config: json: cannot unmarshal string into Go struct field Config.limits of type int`},
		{"overflow", head + "  - {name: F, handler: Counter, args: [300]}\n", `a.yaml:5:40: deployments[0]: args[0]: value 300 does not fit parameter type uint8: json: cannot unmarshal number 300 into Go value of type uint8`},
		{"value for a handle", head + "  - {name: F, handler: Caller, args: [3]}\n", "a.yaml:5:39: deployments[0]: args[0]: parameter is a handle, give {handle: DEPLOYMENT}"},
		{"handle for a value", head + "  - {name: F, handler: Tag, args: [{handle: E}]}\n  - {name: E, handler: Echo}\n", "a.yaml:5:36: deployments[0]: args[0]: parameter type string is not a *serve.Handle, cannot take bound deployment Echo"},
		{"handle of the wrong type", head + "  - {name: F, handler: Caller, args: [{handle: E}]}\n  - {name: E, handler: Echo}\n",
			"a.yaml:5:39: deployments[0]: args[0]: parameter *serve.Handle[int,int] does not match deployment Echo, which takes string and returns string"},
		{"handle of a struct type", head + "  - {name: F, handler: Fan, args: [{handle: S}]}\n  - {name: S, handler: Scorer, args: [{}, []]}\n",
			"a.yaml:5:36: deployments[0]: args[0]: parameter *serve.Handle[github.com/sluice-serve/sluice/platform/serve_test.Cmd,string] does not match deployment Scorer, which takes serve_test.Cmd and returns float64"},
		{"batching", head + "  - {name: F, handler: Echo, batching: {max_batch_size: 4}}\n", "a.yaml:5:40: deployments[0].batching: handler Echo is not a batch handler (write it with serve.BatchFunc)"},
		{"transform", head + "  - {name: F, kind: cel}\n  - {name: A, handler: Adder, args: [1]}\nedges:\n  - {from: F, to: A, transform: '{\"a\": 1}'}\n",
			"a.yaml:8:33: edges[0].transform: yields map(string, int), but Adder takes int (want int or uint)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			apps, err := spec.Parse("a.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got, live := bundle.Check(apps[0], m), reg.Check(apps[0])
			if got == nil || !strings.HasPrefix(got.Error(), tc.want) {
				t.Fatalf("Check =\n%v\nwant\n%s", got, tc.want)
			}
			if live == nil || live.Error() != got.Error() {
				t.Fatalf("the live registry says\n%v\nthe manifest from JSON\n%v", live, got)
			}
		})
	}
}

func decodedManifest(t testing.TB, reg *serve.Registry) bundle.Manifest {
	t.Helper()
	data, err := reg.Manifest().Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The manifest, written to JSON and read back, checks every spec of the
// repository (its YAML files and the specs written inside its tests) and
// thousands of broken variants with the words of Registry.Check before
// manifests (ReflectCheck), placed at their file:line:col.
func TestManifestRoundTripChecksAsBefore(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	m := decodedManifest(t, reg)
	var handlers []string
	for _, h := range m.Handlers {
		handlers = append(handlers, h.Name)
	}
	apps := repoSpecs(t)
	for _, a := range reg.Apps() {
		apps = append(apps, a.Spec())
	}
	if len(apps) < 30 {
		t.Fatalf("only %d specs found in the repository", len(apps))
	}
	var checked, refused int
	for _, app := range apps {
		for _, variant := range append([]*spec.App{app}, mutations(app, handlers)...) {
			checked++
			want := errString(serve.ReflectCheck(reg, variant))
			got := errString(bundle.Check(variant, m))
			if live := errString(reg.Check(variant)); live != got {
				t.Fatalf("%s: the live registry says\n%s\nthe manifest from JSON\n%s", where(variant), live, got)
			}
			if unplaced(got) != want {
				t.Fatalf("%s: Check =\n%s\nbefore manifests\n%s", where(variant), got, want)
			}
			if variant.Source != nil {
				// Without its file, the same words exactly.
				bare := variant.Clone()
				bare.Source = nil
				if got, want := errString(bundle.Check(bare, m)), errString(serve.ReflectCheck(reg, bare)); got != want {
					t.Fatalf("%s without its file: Check =\n%s\nbefore manifests\n%s", where(variant), got, want)
				}
			}
			if want != "" {
				refused++
			}
		}
	}
	t.Logf("%d specs, %d variants checked, %d refused", len(apps), checked, refused)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func where(app *spec.App) string {
	if app.Source != nil {
		return app.Source.File + " " + app.Name
	}
	return app.Name
}

var placeOfDeployment = regexp.MustCompile(`(?m)^\S+:\d+:\d+: (deployments\[)`)

// unplaced takes off the places Check now puts before deployment errors.
func unplaced(s string) string { return placeOfDeployment.ReplaceAllString(s, "$1") }

// mutations are broken variants of app: each deployment given an unknown
// handler, every handler, too many or too few arguments, every kind of
// value and a handle to every deployment for each argument, batching,
// and an edge with a transform of each CEL type.
func mutations(app *spec.App, handlers []string) []*spec.App {
	var out []*spec.App
	mutate := func(f func(a *spec.App)) {
		c := app.Clone()
		f(c)
		out = append(out, c)
	}
	values := []string{`"x"`, `1`, `-1`, `300`, `1.5`, `{"a":1}`, `{"threshold":"high"}`, `{"nested":{"N":1000}}`, `[1]`, `["a",2]`, `true`, `null`, `{}`, `[]`}
	transforms := []string{`"s"`, `1`, `1.5`, `{"a": 1}`, `[1]`, `true`, `body`, `b"x"`, `{"echo": "x"}`}
	for i, d := range app.Deployments {
		mutate(func(a *spec.App) { a.Deployments[i].Handler = "Nope" })
		for _, h := range handlers {
			mutate(func(a *spec.App) { a.Deployments[i].Handler = h })
		}
		mutate(func(a *spec.App) {
			a.Deployments[i].Args = append(a.Deployments[i].Args, spec.Arg{Value: json.RawMessage("1")})
		})
		if len(d.Args) > 0 {
			mutate(func(a *spec.App) { a.Deployments[i].Args = a.Deployments[i].Args[:len(d.Args)-1] })
		}
		for j := range d.Args {
			for _, v := range values {
				mutate(func(a *spec.App) { a.Deployments[i].Args[j] = spec.Arg{Value: json.RawMessage(v)} })
			}
			for _, other := range app.Deployments {
				mutate(func(a *spec.App) { a.Deployments[i].Args[j] = spec.Arg{Handle: other.Name} })
			}
		}
		mutate(func(a *spec.App) { a.Deployments[i].Batching.MaxBatchSize = 4 })
		for _, tr := range transforms {
			mutate(func(a *spec.App) {
				a.Edges = append(a.Edges, spec.Edge{From: a.Ingress, To: d.Name, Transform: tr})
			})
		}
	}
	return out
}

// repoSpecs parses every application spec of the repository: its YAML
// files, and the YAML inside its Go tests (fmt verbs filled in), those
// that parse.
func repoSpecs(t testing.TB) []*spec.App {
	t.Helper()
	const root = "../.."
	var apps []*spec.App
	add := func(file string, data []byte) {
		if parsed, err := spec.Parse(file, data); err == nil {
			apps = append(apps, parsed...)
		}
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || n == "protos" || n == "python" || n == "clients" {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(path, ".yaml"):
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			add(path, data)
		case strings.HasSuffix(path, "_test.go"):
			for _, lit := range specLiterals(t, path) {
				add(path, []byte(lit))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return apps
}

var fmtVerb = regexp.MustCompile(`%(\[(\d+)\])?[sdvq]`)

// specLiterals are the string constants of a Go file that hold a spec,
// with the fmt verbs of templates filled: the first argument (the app's
// name) with a name, the others left empty.
func specLiterals(t testing.TB, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || !strings.Contains(s, "route_prefix:") {
			return true
		}
		first := true
		s = fmtVerb.ReplaceAllStringFunc(s, func(v string) string {
			m := fmtVerb.FindStringSubmatch(v)
			if m[2] == "1" || m[2] == "" && first {
				first = false
				return "tmpl"
			}
			return ""
		})
		out = append(out, strings.ReplaceAll(s, "%%", "%"))
		return true
	})
	return out
}

// The SDK writes the record protocol level it speaks: the platform
// refuses to deploy a bundle below the level claim checks need.
func TestManifestProtocolLevel(t *testing.T) {
	t.Parallel()
	reg, err := serve.NewRegistry(nil, serve.Func("Echo", func(_ context.Context, s string) (string, error) { return s, nil }))
	if err != nil {
		t.Fatal(err)
	}
	m := reg.Manifest()
	if m.Protocol != bundle.ProtocolVersion || m.CheckProtocol(bundle.ProtocolClaims) != nil {
		t.Fatalf("manifest protocol %d, want %d", m.Protocol, bundle.ProtocolVersion)
	}
}
