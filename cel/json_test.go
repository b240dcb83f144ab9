package cel

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// jsonCorpus holds JSON texts, valid and not, that parseJSON must read
// as encoding/json does.
var jsonCorpus = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e3`, `-12.5E-2`, `1e400`, `"x"`,
	` {"a" : [1, "b", null, true, {"c": {}}], "d": -0.0} `,
	`{"a": 1, "a": 2}`,
	`"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`,
	`"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\ud83d\ude00\ud83d"`,
	"\"\xff\xfe ok \xc3\xa9\"", "\"\xed\xa0\x80\"",
	`{"big": 179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000}`,
	// not JSON
	``, ` `, `{`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a: 1}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
	`NaN`, `Infinity`, `tru`, `nul`, `"abc`, "\"a\x01b\"", `"\x"`, `"\u12"`, `"\u12g4"`,
	`[1] [2]`, `{} x`, `'a'`, `[` + strings.Repeat("[", 10) + `]`,
}

// TestParseJSONMatchesEncodingJSON checks parseJSON against
// encoding/json on the corpus: the same verdict, the same values.
func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, text := range jsonCorpus {
		checkParseJSON(t, []byte(text))
	}
}

// checkParseJSON compares parseJSON with encoding/json on b.
func checkParseJSON(t *testing.T, b []byte) {
	t.Helper()
	got, ok := parseJSON(b)
	var want any
	err := json.Unmarshal(b, &want)
	switch {
	case err != nil && ok:
		t.Fatalf("%q: parsed as %#v; encoding/json: %v", b, got, err)
	case err == nil && !ok:
		if jsonDepth(want) > maxJSONDepth {
			return // deeper than parseJSON goes
		}
		t.Fatalf("%q: not parsed; encoding/json reads %#v", b, want)
	case ok && !reflect.DeepEqual(got, want):
		t.Fatalf("%q: parsed as %#v, encoding/json reads %#v", b, got, want)
	}
}

func jsonDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			d = max(d, jsonDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range v {
			d = max(d, jsonDepth(e))
		}
		return d + 1
	}
	return 0
}

// TestParseJSONDepth checks the nesting bound.
func TestParseJSONDepth(t *testing.T) {
	t.Parallel()
	at := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	if _, ok := parseJSON([]byte(at)); !ok {
		t.Errorf("arrays nested %d deep not parsed", maxJSONDepth)
	}
	past := "[" + at + "]"
	if _, ok := parseJSON([]byte(past)); ok {
		t.Errorf("arrays nested %d deep parsed", maxJSONDepth+1)
	}
	objs := strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1)
	if _, ok := parseJSON([]byte(objs)); ok {
		t.Errorf("objects nested %d deep parsed", maxJSONDepth+1)
	}
}

func encode(t *testing.T, v ref.Val) (string, error) {
	t.Helper()
	e := encoder{ctx: t.Context()}
	b, err := e.appendJSON(nil, v, 0)
	return string(b), err
}

// TestEncodeDouble checks that doubles encode as encoding/json writes
// float64s.
func TestEncodeDouble(t *testing.T) {
	t.Parallel()
	fs := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.73, 1.5e-7, 1e-6, 9.99e-7, 123456789, 1e20, 1e21, 1.5e21,
		-2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, 9007199254740993, 1e100, 3.14159}
	for i := range 2000 {
		fs = append(fs, math.Float64frombits(uint64(i)*0x9e3779b97f4a7c15))
	}
	for _, f := range fs {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encode(t, types.Double(f))
		if err != nil || got != string(want) {
			t.Fatalf("%v encodes as %s, %v; encoding/json writes %s", f, got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := encode(t, types.Double(f)); err == nil {
			t.Errorf("%v encoded", f)
		}
	}
}

// TestEncodeStrings checks string escaping against encoding/json (which
// also escapes <, > and &, and U+2028/U+2029; unescaping both gives the
// same text) and that invalid UTF-8 becomes U+FFFD.
func TestEncodeStrings(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "q\"b\\s/", "\n\r\t\b\f\x00\x1f\x7f", "é😀✓", "<&>", "\u2028", "a\xffb", "\xed\xa0\x80"} {
		got, err := encode(t, types.String(s))
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid([]byte(got)) {
			t.Fatalf("%q encodes as invalid JSON %s", s, got)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Fatal(err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if s == "a\xffb" {
			want = "a\ufffdb"
		}
		if s == "\xed\xa0\x80" {
			want = "\ufffd\ufffd\ufffd"
		}
		if back != want {
			t.Fatalf("%q encodes as %s, which reads back as %q; want %q", s, got, back, want)
		}
	}
}

// TestEncodeValues checks the encoding of each kind of CEL value.
func TestEncodeValues(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))
	tests := []struct {
		v    ref.Val
		want string
	}{
		{types.NullValue, `null`},
		{types.True, `true`},
		{types.Int(-42), `-42`},
		{types.Uint(math.MaxUint64), `18446744073709551615`},
		{types.Bytes{0, 1, 255}, `"AAH/"`},
		{types.Duration{Duration: 1500 * time.Millisecond}, `"1.5s"`},
		{types.Timestamp{Time: ts}, `"2024-01-02T02:04:05.0000006Z"`},
		{types.OptionalNone, `null`},
		{types.OptionalOf(types.String("x")), `"x"`},
		{types.NewStringList(types.DefaultTypeAdapter, []string{"a", "b"}), `["a","b"]`},
		{types.DefaultTypeAdapter.NativeToValue(map[string]any{"b": []any{1.0, nil}, "a": map[string]any{}}), `{"a":{},"b":[1,null]}`},
		{types.DefaultTypeAdapter.NativeToValue(map[int64]string{-1: "m", 10: "t", 2: "d"}), `{"-1":"m","10":"t","2":"d"}`},
		{types.NewDynamicMap(types.DefaultTypeAdapter, map[bool]int{true: 1}), `{"true":1}`},
	}
	for _, tt := range tests {
		got, err := encode(t, tt.v)
		if err != nil || got != tt.want {
			t.Errorf("%v encodes as %s, %v; want %s", tt.v, got, err, tt.want)
		}
	}
	for _, v := range []ref.Val{types.IntType, types.NewErr("boom"), types.NewDynamicMap(types.DefaultTypeAdapter, map[float64]int{1.5: 1})} {
		if got, err := encode(t, v); err == nil {
			t.Errorf("%v encodes as %s", v, got)
		}
	}
}
