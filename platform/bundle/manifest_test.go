package bundle

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/platform/spec"
)

func TestManifestRoundTrip(t *testing.T) {
	t.Parallel()
	m := testManifest()
	m.Apps = []*spec.App{{Name: "a", RoutePrefix: "/a", Ingress: "A", Deployments: []spec.Deployment{{Name: "A", Handler: "Add", Args: []spec.Arg{{Value: json.RawMessage("1")}}}}}}
	m.Apps[0].Default()
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := back.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(data) {
		t.Fatalf("the manifest does not read back the same:\n%s\n---\n%s", data, again)
	}
	if h := back.Handler("Points"); h == nil || !h.Reconfigure || h.Kind != KindStream || len(h.Args) != 2 {
		t.Fatalf("Points = %+v", h)
	}
	if h := back.Handler("Embed"); h == nil || !h.Batches() || !h.Func {
		t.Fatalf("Embed = %+v", h)
	}
	if back.Handler("Nope") != nil {
		t.Fatal("Handler found a handler that is not there")
	}
	if !reflect.DeepEqual(back.Apps[0].Deployments[0].Args, m.Apps[0].Deployments[0].Args) {
		t.Fatalf("apps = %+v", back.Apps[0])
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	good, err := testManifest().Encode()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	handler := func(m map[string]any, i int) map[string]any { return m["handlers"].([]any)[i].(map[string]any) }
	tests := []struct{ name, data, want string }{
		{"not JSON", "{", "manifest: unexpected end of JSON input"},
		{"newer format", edit(func(m map[string]any) { m["format"] = 2 }), "unsupported manifest format 2: this platform reads format 1"},
		{"no format", `{"sdk":{}}`, "unsupported manifest format 0"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), `manifest: json: unknown field "extra"`},
		{"unknown schema keyword", edit(func(m map[string]any) {
			handler(m, 0)["input"].(map[string]any)["schema"].(map[string]any)["typo"] = 1
		}), `unknown field "typo"`},
		{"no language", edit(func(m map[string]any) { delete(m["sdk"].(map[string]any), "language") }), "manifest: sdk.language: empty"},
		{"bad kind", edit(func(m map[string]any) { handler(m, 1)["kind"] = "bulk" }), `manifest: handlers[1].kind: "bulk", want unary, stream, batch or http`},
		{"twice", edit(func(m map[string]any) { handler(m, 1)["name"] = "Add" }), "manifest: handlers[1].name: Add is listed twice"},
		{"no name", edit(func(m map[string]any) { handler(m, 1)["name"] = "" }), "manifest: handlers[1].name: empty"},
		{"no schema", edit(func(m map[string]any) { delete(handler(m, 0)["output"].(map[string]any), "schema") }), "manifest: handlers[0].output.schema: missing"},
		{"handle without types", edit(func(m map[string]any) {
			delete(handler(m, 1)["args"].([]any)[0].(map[string]any), "input")
		}), "manifest: handlers[1].args[0].input: missing"},
		{"required after optional", edit(func(m map[string]any) {
			a := handler(m, 1)["args"].([]any)[0].(map[string]any)
			a["optional"] = true
			handler(m, 1)["args"] = []any{a, handler(m, 0)["args"].([]any)[0]}
		}), "manifest: handlers[1].args[1]: a required parameter after an optional one"},
		{"function with args", edit(func(m map[string]any) { handler(m, 2)["args"] = handler(m, 0)["args"] }), "manifest: handlers[2].args: a function takes no arguments"},
		{"invalid app", edit(func(m map[string]any) {
			m["apps"] = []any{map[string]any{"name": "a", "route_prefix": "/a", "ingress": "Z", "deployments": []any{map[string]any{"name": "A"}}}}
		}), `manifest: apps[0]: application a: partitions: must be between 1 and 1024, got 0`},
		{"trailing data", string(good) + "{}", "manifest: invalid character '{' after top-level value"},
		{"negative protocol", edit(func(m map[string]any) { m["protocol"] = -1 }), "manifest: protocol: -1, want a level of 0 or more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Decode([]byte(`{"format": 7}`)); !errors.Is(err, ErrFormat) {
		t.Fatalf("a newer format: %v, want ErrFormat", err)
	}
}

// A manifest written before protocol levels (no "protocol") still
// decodes, strictly, at level 0; CheckProtocol refuses it for claims,
// saying to rebuild. One at the current level passes.
func TestManifestProtocol(t *testing.T) {
	t.Parallel()
	m := testManifest()
	m.Protocol = 0
	old, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(old), "protocol") {
		t.Fatalf("level 0 is written: %s", old)
	}
	back, err := Decode(old)
	if err != nil || back.Protocol != 0 {
		t.Fatalf("an old manifest: %v, protocol %d", err, back.Protocol)
	}
	if err := back.CheckProtocol(ProtocolClaims); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "rebuild it with the current SDK") {
		t.Errorf("CheckProtocol of level 0 = %v", err)
	}
	m.Protocol = ProtocolVersion
	cur, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err = Decode(cur)
	if err != nil || back.Protocol != ProtocolVersion || back.CheckProtocol(ProtocolClaims) != nil {
		t.Errorf("a current manifest: %v, protocol %d", err, back.Protocol)
	}
}
