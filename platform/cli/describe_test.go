package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/examples/bench"
	"github.com/sluice-serve/sluice/examples/chain"
	"github.com/sluice-serve/sluice/examples/hello"
	"github.com/sluice-serve/sluice/examples/stream"
	"github.com/sluice-serve/sluice/examples/tensors"
	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/platform/serve"
)

// describe runs `sluice describe args...` on a binary with the stock
// binary's registry.
func describe(t *testing.T, args ...string) (string, error) {
	t.Helper()
	apps := append([]*serve.Application{hello.App(), chain.App(), stream.App()}, tensors.Apps()...)
	reg, err := serve.NewRegistry(apps, bench.Noop)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = Run(t.Context(), append([]string{"describe"}, args...), Env{
		Stdout: &out, Stderr: &errOut, Log: slog.New(slog.DiscardHandler), Registry: reg,
		Getenv: func(string) string { return "" },
	})
	if errOut.Len() > 0 {
		t.Errorf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

// --json prints the manifest and nothing else: what sluice code push
// reads from a bundle's binary.
func TestDescribeJSON(t *testing.T) {
	t.Parallel()
	out, err := describe(t, "--json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Decode([]byte(out))
	if err != nil {
		t.Fatalf("describe --json does not decode: %v\n%s", err, out)
	}
	for name, kind := range map[string]string{
		"Adder": "unary", "Multiplier": "unary", "Ingress": "unary", "LanguageClassifier": "unary",
		"SpanishResponder": "unary", "FrenchResponder": "unary", "Caller": "stream", "Streamer": "stream",
		"Doubler": "unary", "Adder64": "unary", "Upper": "unary", "Noop": "unary",
	} {
		h := m.Handler(name)
		if h == nil || h.Kind != kind {
			t.Errorf("handler %s = %+v, want kind %s", name, h, kind)
		}
	}
	if len(m.Handlers) != 12 {
		t.Errorf("%d handlers, want 12", len(m.Handlers))
	}
	lc := m.Handler("LanguageClassifier")
	if len(lc.Args) != 2 || !lc.Args[0].Handle || lc.Args[0].Input.Go != "string" || lc.Args[1].Output.Go != "string" {
		t.Errorf("LanguageClassifier args = %+v", lc.Args)
	}
	if a := m.Handler("Adder"); len(a.Args) != 1 || a.Args[0].Handle || a.Args[0].Go != "int" {
		t.Errorf("Adder args = %+v", a.Args)
	}
	if !m.Handler("SpanishResponder").Func || m.Handler("Doubler").Input.Encoding != bundle.EncodingOIP {
		t.Error("functions or OIP types misdescribed")
	}
	if len(m.Apps) != 6 || m.Apps[1].Name != "chain" {
		t.Errorf("apps = %v", m.Apps)
	}
}

func TestDescribeTable(t *testing.T) {
	t.Parallel()
	out, err := describe(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"HANDLER             KIND    INPUT                    OUTPUT                    ARGS",
		"Caller              stream  int                      int                       (handle int→int)  ",
		"LanguageClassifier  unary   hello.Request            string (text)             (handle string→string, handle string→string)",
		"Doubler             unary   *oip.InferRequest (oip)  *oip.InferResponse (oip)  -",
		"Adder               unary   int                      int                       (int)",
		"hello        /hello    LanguageClassifier  LanguageClassifier, SpanishResponder, FrenchResponder",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line %q in:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(out, "SDK go ") {
		t.Errorf("no SDK line:\n%s", out)
	}
}

func TestDescribeUsage(t *testing.T) {
	t.Parallel()
	if _, err := describe(t, "extra"); ExitCode(err) != 2 || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Fatalf("describe extra: %v", err)
	}
	out, err := describe(t, "--help")
	if err != nil || !strings.Contains(out, "usage: sluice describe") || !strings.Contains(out, "--json") {
		t.Fatalf("describe --help: %v\n%s", err, out)
	}
	stdout, _, err := runCLI(t, nil, "describe")
	if err == nil || ExitCode(err) != 1 || stdout != "" {
		t.Fatalf("describe without a registry: %v, %q", err, stdout)
	}
}
