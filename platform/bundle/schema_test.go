package bundle

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

type point struct {
	X int     `json:"x"`
	Y float32 `json:"y,omitempty"`
}

type Inner struct {
	A     string `json:"a"`
	Depth uint8
}

type outer struct {
	Inner                     // promoted: a and Depth
	*Deep                     // promoted through a pointer
	P         point           `json:"p"`
	Ps        []point         `json:"ps"`
	M         map[string]int  `json:"m"`
	Keys      map[int8]string `json:"keys"`
	Any       any             `json:"any"`
	Bytes     []byte          `json:"bytes"`
	Pair      [2]int          `json:"pair"`
	Ptr       *int            `json:"ptr"`
	Skipped   int             `json:"-"`
	Dash      int             `json:"-,"`
	Quoted    int             `json:"quoted,string"`
	Stamp     time.Time       `json:"stamp"`
	Addr      netip.Addr      `json:"addr"` // a text unmarshaler
	Raw       json.RawMessage `json:"raw"`
	Err       error           `json:"err"`
	hidden    int
	CaseA     int `json:"k"`
	CaseB     int `json:"K"`
	Untagged  bool
	Nested    struct{ Z []uint16 } `json:"nested"`
	ByteArray [3]byte              `json:"byte_array"`
}

type Deep struct {
	D int64 `json:"d"`
}

// node refers to itself.
type node struct {
	Name     string  `json:"name"`
	Children []*node `json:"children"`
	Next     *node   `json:"next"`
}

// conflict has two fields named X at one depth: encoding/json drops both.
type conflict struct {
	left
	right
	Y int `json:"y"`
}
type left struct{ X int }
type right struct{ X string }

// A deeper field loses to a shallower one of the same name.
type shadow struct {
	left
	X bool
}

type named string

// list and tree refer to themselves without a struct.
type list []list
type tree map[string]tree

type ifaceField struct {
	S interface{ String() string } `json:"s"`
}

type mapOfStructs map[string]point

// decodeTypes are the types the differential tests decode into.
var decodeTypes = []reflect.Type{
	reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[int16](), reflect.TypeFor[int32](), reflect.TypeFor[int64](),
	reflect.TypeFor[uint](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](), reflect.TypeFor[uint32](), reflect.TypeFor[uint64](), reflect.TypeFor[uintptr](),
	reflect.TypeFor[float32](), reflect.TypeFor[float64](), reflect.TypeFor[bool](), reflect.TypeFor[string](), reflect.TypeFor[named](),
	reflect.TypeFor[[]byte](), reflect.TypeFor[[]int](), reflect.TypeFor[[2]string](), reflect.TypeFor[[0]int](), reflect.TypeFor[[]*point](),
	reflect.TypeFor[map[string]any](), reflect.TypeFor[map[uint8]bool](), reflect.TypeFor[map[bool]int](), reflect.TypeFor[mapOfStructs](),
	reflect.TypeFor[any](), reflect.TypeFor[error](), reflect.TypeFor[*int](), reflect.TypeFor[**string](), reflect.TypeFor[complex64](),
	reflect.TypeFor[chan int](), reflect.TypeFor[func()](), reflect.TypeFor[list](), reflect.TypeFor[tree](),
	reflect.TypeFor[point](), reflect.TypeFor[outer](), reflect.TypeFor[*outer](), reflect.TypeFor[node](), reflect.TypeFor[conflict](),
	reflect.TypeFor[shadow](), reflect.TypeFor[ifaceField](), reflect.TypeFor[struct{}](), reflect.TypeFor[struct {
		A int `json:"a"`
	}](),
	reflect.TypeFor[time.Time](), reflect.TypeFor[netip.Addr](), reflect.TypeFor[json.RawMessage](), reflect.TypeFor[json.Number](),
}

// decodeValues are JSON documents of every shape, right and wrong for
// the types above.
var decodeValues = []string{
	`null`, `0`, `1`, `-1`, `-0`, `+1`, `1.5`, `1e3`, `1E400`, `-129`, `127`, `128`, `255`, `256`, `65536`, `4294967296`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775809`, `18446744073709551615`, `18446744073709551616`,
	`3.4e38`, `3.5e38`, `""`, `"s"`, `"aGVsbG8="`, `"!!"`, `"1"`, `"2006-01-02T15:04:05Z"`, `"::1"`, `true`, `false`,
	`[]`, `[1,2,3]`, `["a","b","c"]`, `[1,"a"]`, `[null]`, `[[1]]`, `[{"x":1}]`, `[{"x":"1"}]`, `[1e400]`,
	`{}`, `{"a":1}`, `{"1":2}`, `{"-1":true}`, `{"256":true}`, `{"x":"a"}`, `{"a":{"b":1e400}}`,
	`{"x":1,"y":2.5}`, `{"X":1}`, `{"x":1.5}`, `{"y":1e40}`, `{"x":"one","y":"two"}`,
	`{"a":"s","Depth":300}`, `{"A":1}`, `{"depth":-1}`, `{"d":"x"}`, `{"D":1}`,
	`{"p":{"x":"no"}}`, `{"ps":[{"x":1},{"x":true}]}`, `{"ps":{"x":1}}`, `{"m":{"a":"b"}}`, `{"m":[1]}`,
	`{"keys":{"1":"a","x":"b"}}`, `{"keys":{"200":"a"}}`, `{"keys":{"1":2}}`, `{"any":[1,{"a":1e999}]}`, `{"any":"x"}`,
	`{"bytes":"aGk="}`, `{"bytes":"@"}`, `{"bytes":[1,2,300]}`, `{"pair":[1,2,3]}`, `{"pair":[1,"x"]}`, `{"pair":["x"]}`,
	`{"ptr":1}`, `{"ptr":"x"}`, `{"Skipped":"x"}`, `{"-":"x"}`, `{"quoted":"12"}`, `{"quoted":12}`,
	`{"stamp":"2006-01-02T15:04:05Z"}`, `{"addr":1}`, `{"addr":"::1"}`, `{"raw":{"any":1}}`, `{"err":"x"}`, `{"err":null}`,
	`{"hidden":"x"}`, `{"k":"x"}`, `{"K":"x"}`, `{"Untagged":1}`, `{"untagged":"x"}`, `{"nested":{"Z":[1,-1]}}`,
	`{"nested":{"z":[70000]}}`, `{"byte_array":"aGk="}`, `{"byte_array":[1,2,3,4]}`, `{"name":1}`,
	`{"children":[{"name":"a","children":[{"name":2}]}]}`, `{"next":{"next":{"name":[]}}}`, `{"y":"x","x":1}`,
	`[[],[[1]]]`, `{"a":{"b":{"c":1}}}`, `{"a":{"b":[]}}`, `[[[[]]],"x"]`,
	`{"s":"x"}`, `{"s":null}`, `{"x":1,"x":"a"}`, `{"a":{"x":1}}`, `{"a":{"x":"s"},"b":{"x":2}}`,
	`{"ps":[{"x":1}],"p":{"y":"bad"}}`, `{"p":{"y":"bad"},"m":{"a":"b"}}`,
	``, `{`, `[1,]`, `{"a":1}x`, `nul`,
}

// selfDecoding reports whether t decodes some value of its own: there
// Validate may accept what json.Unmarshal refuses, never the reverse.
func selfDecodes(t reflect.Type) bool {
	switch t {
	case reflect.TypeFor[outer](), reflect.TypeFor[*outer](), reflect.TypeFor[time.Time](), reflect.TypeFor[netip.Addr](),
		reflect.TypeFor[json.RawMessage](), reflect.TypeFor[json.Number]():
		return true
	}
	return false
}

// Validate gives the error json.Unmarshal gives, word for word, for every
// type and document above; from a schema read back from its JSON too.
func TestValidateMatchesUnmarshal(t *testing.T) {
	t.Parallel()
	for _, typ := range decodeTypes {
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			s := SchemaOf(typ)
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			back := new(Schema)
			if err := json.Unmarshal(b, back); err != nil {
				t.Fatalf("schema does not read back: %v\n%s", err, b)
			}
			for _, raw := range decodeValues {
				want := json.Unmarshal([]byte(raw), reflect.New(typ).Interface())
				for _, sc := range []*Schema{s, back} {
					got := sc.Validate([]byte(raw))
					if sameError(got, want) {
						continue
					}
					if selfDecodes(typ) && got == nil {
						continue // what the type decodes itself is checked by the replica
					}
					t.Errorf("%s:\n  Validate:  %v\n  Unmarshal: %v\nschema: %s", raw, got, want, b)
				}
			}
		})
	}
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error()
}

// FuzzValidate: for any document, Validate and json.Unmarshal agree.
func FuzzValidate(f *testing.F) {
	for _, v := range decodeValues {
		f.Add([]byte(v))
	}
	schemas := make([]*Schema, len(decodeTypes))
	for i, typ := range decodeTypes {
		schemas[i] = SchemaOf(typ)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for i, typ := range decodeTypes {
			want := json.Unmarshal(raw, reflect.New(typ).Interface())
			got := schemas[i].Validate(raw)
			if !sameError(got, want) && !(selfDecodes(typ) && got == nil) {
				t.Fatalf("%s %q:\n  Validate:  %v\n  Unmarshal: %v", typ, raw, got, want)
			}
		}
	})
}

func TestSchemaOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[int8](), `{"type":"integer","format":"int8","minimum":-128,"maximum":127,"x-go-type":"int8"}`},
		{reflect.TypeFor[uint16](), `{"type":"integer","format":"uint16","minimum":0,"maximum":65535,"x-go-type":"uint16"}`},
		{reflect.TypeFor[float32](), `{"type":"number","format":"float","x-go-type":"float32"}`},
		{reflect.TypeFor[*string](), `{"type":"string","x-go-type":"string"}`},
		{reflect.TypeFor[[]byte](), `{"type":["string","array"],"contentEncoding":"base64","items":{"type":"integer","format":"uint8","minimum":0,"maximum":255,"x-go-type":"uint8"},"x-go-type":"[]uint8"}`},
		{reflect.TypeFor[[2]bool](), `{"type":"array","items":{"type":"boolean","x-go-type":"bool"},"x-go-type":"[2]bool","x-go-len":2}`},
		{reflect.TypeFor[map[string]float64](), `{"type":"object","additionalProperties":{"type":"number","format":"double","x-go-type":"float64"},"x-go-type":"map[string]float64"}`},
		{reflect.TypeFor[any](), `{"x-go-type":"interface {}"}`},
		{reflect.TypeFor[error](), `{"type":"null","x-go-type":"error","x-go-interface":true}`},
		{reflect.TypeFor[time.Time](), `{"type":"string","format":"date-time","x-go-type":"*time.Time","x-go-decoder":"json"}`},
		{reflect.TypeFor[json.RawMessage](), `{"x-go-type":"*json.RawMessage","x-go-decoder":"json"}`},
		{reflect.TypeFor[netip.Addr](), `{"type":"string","x-go-type":"*netip.Addr","x-go-decoder":"text"}`},
		{reflect.TypeFor[point](), `{"type":"object","properties":{"x":{"type":"integer","format":"int64","minimum":-9223372036854775808,"maximum":9223372036854775807,"x-go-type":"int"},"y":{"type":"number","format":"float","x-go-type":"float32"}},"x-go-type":"bundle.point","x-go-name":"point"}`},
		{reflect.TypeFor[node](), `{"$defs":{"github.com/sluice-serve/sluice/platform/bundle.node":{"type":"object","properties":{"name":{"type":"string","x-go-type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/github.com~1sluice-serve~1sluice~1platform~1bundle.node"},"x-go-type":"[]*bundle.node"},"next":{"$ref":"#/$defs/github.com~1sluice-serve~1sluice~1platform~1bundle.node"}},"x-go-type":"bundle.node","x-go-name":"node"}},"type":"object","properties":{"name":{"type":"string","x-go-type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/github.com~1sluice-serve~1sluice~1platform~1bundle.node"},"x-go-type":"[]*bundle.node"},"next":{"$ref":"#/$defs/github.com~1sluice-serve~1sluice~1platform~1bundle.node"}},"x-go-type":"bundle.node","x-go-name":"node"}`},
	}
	for _, tc := range tests {
		t.Run(tc.typ.String(), func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(SchemaOf(tc.typ))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("SchemaOf(%s) =\n%s\nwant\n%s", tc.typ, b, tc.want)
			}
		})
	}
}

// The promoted, hidden and tagged fields of a struct are the ones
// encoding/json sees, in field order.
func TestSchemaOfStructFields(t *testing.T) {
	t.Parallel()
	s := SchemaOf(reflect.TypeFor[outer]())
	var names []string
	for _, p := range s.Properties {
		n := p.Name
		if len(p.Schema.GoEmbedded) > 0 {
			n = strings.Join(p.Schema.GoEmbedded, ".") + "." + n
		}
		if p.Schema.GoString {
			n += ",string"
		}
		names = append(names, n)
	}
	want := "Inner.a Inner.Depth Deep.d p ps m keys any bytes pair ptr - quoted,string stamp addr raw err k K Untagged nested byte_array"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("properties = %s\nwant         %s", got, want)
	}
	if c := SchemaOf(reflect.TypeFor[conflict]()); len(c.Properties) != 1 || c.Properties[0].Name != "y" {
		t.Fatalf("conflicting x not dropped: %+v", c.Properties)
	}
	if sh := SchemaOf(reflect.TypeFor[shadow]()); len(sh.Properties) != 1 || sh.Properties[0].Schema.GoType != "bool" {
		t.Fatalf("the shallow x does not win: %+v", sh.Properties)
	}
}

func TestTypeID(t *testing.T) {
	t.Parallel()
	const pkg = "github.com/sluice-serve/sluice/platform/bundle"
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[int]():                   "int",
		reflect.TypeFor[error]():                 "error",
		reflect.TypeFor[point]():                 pkg + ".point",
		reflect.TypeFor[[]*point]():              "[]*" + pkg + ".point",
		reflect.TypeFor[map[string][3]point]():   "map[string][3]" + pkg + ".point",
		reflect.TypeFor[struct{}]():              "struct {}",
		reflect.TypeFor[struct{ A, b int }]():    "struct { A int; " + pkg + ".b int }",
		reflect.TypeFor[struct{ point }]():       "struct { " + pkg + ".point }",
		reflect.TypeFor[time.Duration]():         "time.Duration",
		reflect.TypeFor[map[netip.Addr]string](): "map[net/netip.Addr]string",
	} {
		if got := TypeID(typ); got != want {
			t.Errorf("TypeID(%s) = %q, want %q", typ, got, want)
		}
	}
}

func TestTypesAndPropertiesJSON(t *testing.T) {
	t.Parallel()
	var s Schema
	err := json.Unmarshal([]byte(`{"type":["string","null"],"properties":{"b":{"type":"integer"},"a":{}}}`), &s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Type, Types{"string", "null"}) || len(s.Properties) != 2 || s.Properties[0].Name != "b" {
		t.Fatalf("read %+v", s)
	}
	b, _ := json.Marshal(s)
	if string(b) != `{"type":["string","null"],"properties":{"b":{"type":"integer"},"a":{}}}` {
		t.Fatalf("written %s", b)
	}
	if err := json.Unmarshal([]byte(`{"properties":{"a":{"typo":1}}}`), &s); err == nil {
		t.Fatal("an unknown keyword in a property was accepted")
	}
	if err := json.Unmarshal([]byte(`{"type":1}`), &s); err == nil {
		t.Fatal("a numeric type was accepted")
	}
	var errSyntax *json.SyntaxError
	if err := SchemaOf(reflect.TypeFor[int]()).Validate([]byte("{")); !errors.As(err, &errSyntax) {
		t.Fatalf("broken JSON: %v", err)
	}
}
