package cel

import (
	"testing"
)

// TestVariables evaluates each variable and helper of the environment
// and checks the JSON of its value.
func TestVariables(t *testing.T) {
	t.Parallel()
	ts := testTensors()
	headers := map[string]string{"x-tenant": "acme", "x-user": "u-1"}
	body := []byte(`{"score": 0.73, "country": "FR", "name": "Ada", "language": "EN",
		"tags": ["math", "engines"], "account": {"active": true, "id": null}, "items": 3}`)
	tests := []struct {
		name string
		expr string
		in   *Input
		want string
	}{
		// request
		{"header", `request.headers["x-tenant"]`, &Input{Headers: headers}, `"acme"`},
		{"header names lower-cased", `request.headers["x-tenant"]`,
			&Input{Headers: map[string]string{"X-Tenant": "acme"}}, `"acme"`},
		{"header absent", `"x-none" in request.headers`, &Input{Headers: headers}, `false`},
		{"header optional", `request.headers[?"x-none"].orValue("none")`, &Input{Headers: headers}, `"none"`},
		{"no headers", `size(request.headers)`, &Input{}, `0`},
		{"id", `request.id`, &Input{ID: "req-9"}, `"req-9"`},
		{"model", `request.model`, &Input{Model: "resnet"}, `"resnet"`},
		{"no model", `[request.model, has(request.model)]`, &Input{}, `["",false]`},
		{"has model", `has(request.model)`, &Input{Model: "resnet"}, `true`},
		{"request whole", `request`, &Input{ID: "r", Headers: map[string]string{"a": "b"}},
			`{"headers":{"a":"b"},"id":"r","model":""}`},
		{"request via dyn", `dyn(request).id`, &Input{ID: "r"}, `"r"`},
		{"request type", `type(request) == type(request) && request == request`, &Input{}, `true`},

		// body
		{"body field", `body.score`, &Input{Body: body}, `0.73`},
		{"body nested", `body.account.active`, &Input{Body: body}, `true`},
		{"body list", `body.tags[1]`, &Input{Body: body}, `"engines"`},
		{"body json null", `body.account.id == null`, &Input{Body: body}, `true`},
		{"body number is double", `[body.items == 3, body.items > 2, body.items + 1.0, int(body.items) + 1]`,
			&Input{Body: body}, `[true,true,4,4]`},
		{"body has", `[has(body.name), has(body.nope)]`, &Input{Body: body}, `[true,false]`},
		{"body optional field", `body.?nope.orValue("d")`, &Input{Body: body}, `"d"`},
		{"body whole", `body.account`, &Input{Body: body}, `{"active":true,"id":null}`},
		{"body not JSON", `body`, &Input{Body: []byte("plain text")}, `null`},
		{"body empty", `body == null`, &Input{}, `true`},
		{"body null", `body`, &Input{Body: []byte(" null ")}, `null`},
		{"body array", `body[1] + body[0]`, &Input{Body: []byte(`["a","b"]`)}, `"ba"`},
		{"body string", `body`, &Input{Body: []byte(`"\u00e9\ud83d\ude00"`)}, `"é😀"`},
		{"body compact payload", `body`, &Input{Body: requestPayload(t, ts[0])}, `null`},

		// inputs, from the OIP REST JSON form
		{"inputs FP32", `[inputs.x.datatype, inputs.x.shape, inputs.x.data]`, &Input{Body: requestJSON(t, ts...)},
			`["FP32",[2,2],[1,2.5,-3,0.5]]`},
		{"inputs FP64", `inputs.f64.data`, &Input{Body: requestJSON(t, ts...)}, `[0.25]`},
		{"inputs FP16", `inputs.f16.data`, &Input{Body: requestJSON(t, ts...)}, `[1,-2,0.333251953125]`},
		{"inputs INT64", `inputs.ids.data`, &Input{Body: requestJSON(t, ts...)}, `[-7,9007199254740993]`},
		{"inputs INT32", `inputs.i32.data[0] < 0`, &Input{Body: requestJSON(t, ts...)}, `true`},
		{"inputs INT8", `inputs.i8.data`, &Input{Body: requestJSON(t, ts...)}, `[-128,127]`},
		{"inputs UINT8", `inputs.u8.data`, &Input{Body: requestJSON(t, ts...)}, `[0,255]`},
		{"inputs UINT16", `inputs.u16.data`, &Input{Body: requestJSON(t, ts...)}, `[65535]`},
		{"inputs UINT32", `inputs.u32.data[0] + 1`, &Input{Body: requestJSON(t, ts...)}, `4294967296`},
		{"inputs UINT64 is uint", `inputs.u64.data[0] == 18446744073709551615u`, &Input{Body: requestJSON(t, ts...)}, `true`},
		{"inputs BOOL", `inputs.mask.data`, &Input{Body: requestJSON(t, ts...)}, `[true,false]`},
		{"inputs scalar", `[inputs.scalar.shape, inputs.scalar.data, has(inputs.scalar.shape)]`,
			&Input{Body: requestJSON(t, ts...)}, `[[],[42],false]`},
		{"inputs names", `inputs.all(k, k != "") && size(inputs) == 12`, &Input{Body: requestJSON(t, ts...)}, `true`},
		{"inputs whole", `inputs`, &Input{Body: requestJSON(t, ts[0])},
			`{"x":{"data":[1,2.5,-3,0.5],"datatype":"FP32","shape":[2,2]}}`},
		{"inputs and body", `[body.id, inputs.x.datatype]`, &Input{Body: requestJSON(t, ts[0])}, `["req-1","FP32"]`},

		// inputs, from the compact payload form
		{"payload FP32", `[inputs.x.datatype, inputs.x.shape, inputs.x.data]`, &Input{Body: requestPayload(t, ts...)},
			`["FP32",[2,2],[1,2.5,-3,0.5]]`},
		{"payload BYTES", `inputs.text.data`, &Input{Body: requestPayload(t, ts...)}, `["hello","wörld","//4="]`},
		{"payload BYTES types", `inputs.text.data.map(e, type(e) == string)`, &Input{Body: requestPayload(t, ts...)},
			`[true,true,false]`},
		{"payload INT64", `inputs.ids.data[1]`, &Input{Body: requestPayload(t, ts...)}, `9007199254740993`},

		// inputs of what is not an OIP request
		{"inputs of JSON", `inputs`, &Input{Body: body}, `{}`},
		{"inputs of text", `size(inputs)`, &Input{Body: []byte("hi")}, `0`},
		{"inputs of nothing", `inputs`, &Input{}, `{}`},
		{"inputs of a bad request", `inputs`, &Input{Body: []byte(`{"inputs":[{"name":"x"}]}`)}, `{}`},

		// app, deployment
		{"app and deployment", `app + "/" + deployment`, &Input{App: "shop", Deployment: "router"}, `"shop/router"`},

		// upstream
		{"upstream at ingress", `[upstream.name, has(upstream.name), has(upstream.output), upstream.output]`,
			&Input{}, `["",false,false,null]`},
		{"upstream name", `upstream.name`, &Input{Upstream: "classifier"}, `"classifier"`},
		{"upstream output", `upstream.output.label`,
			&Input{Upstream: "classifier", UpstreamOutput: []byte(`{"label":"cat","p":0.9}`)}, `"cat"`},
		{"upstream output not JSON", `upstream.output`, &Input{UpstreamOutput: []byte{0, 1}}, `null`},
		{"upstream outputs JSON", `upstream.outputs.x.data[1]`, &Input{UpstreamOutput: responseJSON(t, ts[0])}, `2.5`},
		{"upstream outputs payload", `upstream.outputs.mask.data`, &Input{UpstreamOutput: responsePayload(t, ts...)},
			`[true,false]`},
		{"upstream outputs none", `upstream.outputs`, &Input{UpstreamOutput: []byte(`{"a":1}`)}, `{}`},
		{"upstream whole", `upstream`, &Input{Upstream: "u", UpstreamOutput: []byte(`[1]`)},
			`{"name":"u","output":[1],"outputs":{}}`},

		// helpers
		{"bucket", `bucket("user-1", 100)`, &Input{}, `8`},
		{"bucket of header", `bucket(request.headers["x-user"], 10)`, &Input{Headers: headers}, `4`},
		{"lowerAscii", `"AbC".lowerAscii()`, &Input{}, `"abc"`},
		{"upperAscii", `"AbC".upperAscii()`, &Input{}, `"ABC"`},
		{"split", `"a,b,c".split(",")`, &Input{}, `["a","b","c"]`},
		{"join", `["a","b"].join("-")`, &Input{}, `"a-b"`},
		{"replace", `"a-b".replace("-", "+")`, &Input{}, `"a+b"`},
		{"trim", `"  x ".trim()`, &Input{}, `"x"`},
		{"substring", `"hello".substring(1, 3)`, &Input{}, `"el"`},
		{"indexOf", `"hello".indexOf("l")`, &Input{}, `2`},
		{"format", `"%s=%d".format(["n", 3])`, &Input{}, `"n=3"`},
		{"matches", `request.id.matches("^req-[0-9]+$")`, &Input{ID: "req-12"}, `true`},
		{"startsWith", `request.model.startsWith("res")`, &Input{Model: "resnet"}, `true`},
		{"optional", `optional.none().orValue(2) + optional.of(1).value()`, &Input{}, `3`},
		{"exists", `body.tags.exists(t, t == "math")`, &Input{Body: body}, `true`},
		{"map and filter", `[1, 2, 3, 4].filter(x, x % 2 == 0).map(x, x * 10)`, &Input{}, `[20,40]`},
		{"duration", `duration("1m30s")`, &Input{}, `"90s"`},
		{"timestamp", `timestamp("2024-01-02T03:04:05.5+01:00")`, &Input{}, `"2024-01-02T02:04:05.5Z"`},
		{"bytes", `b"hi"`, &Input{}, `"aGk="`},
		{"uint", `7u`, &Input{}, `7`},
		{"int map keys", `{2: "b", 1: "a"}`, &Input{}, `{"1":"a","2":"b"}`},
		{"sorted keys", `{"b": 1, "a": 2, "c": {"z": null, "y": [true]}}`, &Input{}, `{"a":2,"b":1,"c":{"y":[true],"z":null}}`},
		{"string escapes", `"q\"b\\s\n\t\x01/<>"`, &Input{}, `"q\"b\\s\n\t\u0001/<>"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := evalJSON(t, tt.expr, tt.in)
			if err != nil {
				t.Fatalf("%s: %v", tt.expr, err)
			}
			if got != tt.want {
				t.Fatalf("%s = %s, want %s", tt.expr, got, tt.want)
			}
		})
	}
}

// TestInputParsedOnce checks that an Input's body is parsed once, on
// first use, and that later changes to Body are not seen (they are not
// allowed; this pins down the caching).
func TestInputParsedOnce(t *testing.T) {
	t.Parallel()
	in := &Input{Body: []byte(`{"a": 1}`)}
	if in.parsed != nil {
		t.Fatal("body parsed before any rule read it")
	}
	p, err := Compile(`request.id == ""`, Condition)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bool(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	if in.parsed != nil {
		t.Fatal("body parsed by a rule that does not read it")
	}
	if got, err := evalJSON(t, `body.a`, in); err != nil || got != "1" {
		t.Fatalf("body.a = %s, %v", got, err)
	}
	in.Body = []byte(`{"a": 2}`)
	if got, err := evalJSON(t, `body.a`, in); err != nil || got != "1" {
		t.Fatalf("after a change of Body, body.a = %s, %v; want the value parsed first", got, err)
	}
}

// TestNilInput evaluates a rule without an Input: every variable is
// empty.
func TestNilInput(t *testing.T) {
	t.Parallel()
	p, err := Compile(`{"r": request, "b": body, "i": inputs, "a": app, "d": deployment, "u": upstream}`, Transform)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.JSON(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":"","b":null,"d":"","i":{},"r":{"headers":{},"id":"","model":""},"u":{"name":"","output":null,"outputs":{}}}`
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
