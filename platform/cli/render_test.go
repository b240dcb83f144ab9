package cli_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluice-serve/sluice/platform/cli"
)

const renderSpec = `name: shop
route_prefix: /shop
ingress: front
deployments:
  - name: front
    replicas: {min: 0, max: 4}
    autoscaling:
      poll_interval: 2s
  - name: fixed
    replicas: {min: 2, max: 2}
edges:
  - {from: front, to: fixed}
`

// runRender runs `sluice render args...` with env holding only vars.
func runRender(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cli.Env{
		Stdout: &out, Stderr: &errOut, Log: slog.New(slog.DiscardHandler),
		Getenv: func(k string) string { return vars[k] },
	}
	err = cli.Run(context.Background(), append([]string{"render"}, args...), env)
	return out.String(), errOut.String(), err
}

func writeSpec(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRender(t *testing.T) {
	t.Parallel()
	file := writeSpec(t, renderSpec)
	out, errOut, err := runRender(t, nil, "-f", file, "--brokers", "b:9092", "--prefix", "acme", "--namespace", "ml")
	if err != nil {
		t.Fatalf("render: %v\n%s", err, errOut)
	}
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
		objs = append(objs, doc)
	}
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1 (fixed has min = max):\n%s", len(objs), out)
	}
	o := objs[0]
	meta := o["metadata"].(map[string]any)
	sp := o["spec"].(map[string]any)
	trig := sp["triggers"].([]any)[0].(map[string]any)["metadata"].(map[string]any)
	if o["kind"] != "ScaledObject" || meta["name"] != "shop-front" || meta["namespace"] != "ml" ||
		sp["pollingInterval"] != 2 || sp["maxReplicaCount"] != 4 {
		t.Errorf("object %v", o)
	}
	if trig["bootstrapServers"] != "b:9092" || trig["consumerGroup"] != "acme.app.shop.dep.front" || trig["topic"] != "acme.app.shop.in" {
		t.Errorf("trigger %v: want brokers b:9092 and names under prefix acme", trig)
	}
	if !strings.Contains(errOut, "shop/fixed") || !strings.Contains(out, "#   shop/fixed: replicas.min = replicas.max = 2") {
		t.Errorf("stdout and stderr (%q) must both say why shop/fixed has no object", errOut)
	}
}

func TestRenderBrokersFromEnv(t *testing.T) {
	t.Parallel()
	out, _, err := runRender(t, map[string]string{"SLUICE_BROKERS": "e1:9092,e2:9092"}, "-f", writeSpec(t, renderSpec))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "bootstrapServers: e1:9092,e2:9092") {
		t.Errorf("SLUICE_BROKERS not used:\n%s", out)
	}
}

func TestRenderUsageErrors(t *testing.T) {
	t.Parallel()
	bad := writeSpec(t, strings.Replace(renderSpec, "poll_interval: 2s", "poll_interval: 2 parsecs", 1))
	good := writeSpec(t, renderSpec)
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"bad spec", []string{"-f", bad, "--brokers", "b:9092"}, []string{bad + ":8:", "poll_interval"}},
		{"missing brokers", []string{"-f", good}, []string{"--brokers"}},
		{"missing file flag", []string{"--brokers", "b:9092"}, []string{"-f"}},
		{"no such file", []string{"-f", filepath.Join(t.TempDir(), "none.yaml"), "--brokers", "b:9092"}, []string{"none.yaml"}},
		{"bad template", []string{"-f", good, "--brokers", "b:9092", "--workload-template", "{app}"}, []string{"--workload-template", "{deployment}"}},
		{"bad prefix", []string{"-f", good, "--brokers", "b:9092", "--prefix", "a b"}, []string{"--prefix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := runRender(t, nil, tc.args...)
			if code := cli.ExitCode(err); code != 2 {
				t.Fatalf("exit code %d (%v), want 2", code, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
		})
	}
}

func TestRenderSameNameTwice(t *testing.T) {
	t.Parallel()
	a, b := writeSpec(t, renderSpec), writeSpec(t, renderSpec)
	_, _, err := runRender(t, nil, "-f", a, "-f", b, "--brokers", "b:9092")
	if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "shop-front") {
		t.Fatalf("the same application in two files: %v, want exit 2 naming shop-front", err)
	}
}
