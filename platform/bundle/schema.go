package bundle

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Schema is a JSON Schema (draft 2020-12) of a Go type, as encoding/json
// decodes it. Standard keywords describe the JSON; the x-go-* keywords
// carry what a platform without the binary needs to refuse a value with
// the message json.Unmarshal would give (Validate): Go type names for the
// messages, embedded fields, map key types, types that decode themselves.
//
// Deviations from plain JSON Schema, all Go's: null is accepted
// everywhere; "integer" means a literal strconv.ParseInt (or ParseUint)
// reads, so 1.0 is not one; unknown object keys are ignored and object
// keys match property names case-insensitively.
type Schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Defs                 map[string]*Schema `json:"$defs,omitempty"`
	Type                 Types              `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	Minimum              json.Number        `json:"minimum,omitempty"`
	Maximum              json.Number        `json:"maximum,omitempty"`
	ContentEncoding      string             `json:"contentEncoding,omitempty"`
	Items                *Schema            `json:"items,omitempty"`
	Properties           Properties         `json:"properties,omitempty"`
	AdditionalProperties *Schema            `json:"additionalProperties,omitempty"`

	// Sluice marks a type the platform encodes itself: "oip" for the Open
	// Inference Protocol request and response of gateway/oip, which travel
	// as the compact tensor payload, not as this JSON.
	Sluice string `json:"x-sluice,omitempty"`
	// GoType is the Go type as reflect prints it ("hello.Request",
	// "[]int"), the name json.Unmarshal's errors give.
	GoType string `json:"x-go-type,omitempty"`
	// GoName is a struct type's name without its package, the struct
	// json.Unmarshal's errors name a field of.
	GoName string `json:"x-go-name,omitempty"`
	// GoLen is a Go array's length: elements past it are ignored.
	GoLen int `json:"x-go-len,omitempty"`
	// GoKey is the schema of an integer map key (object keys are strings
	// in JSON; Go parses them).
	GoKey *Schema `json:"x-go-key,omitempty"`
	// GoDecoder says the type decodes itself: "json" (UnmarshalJSON: any
	// value may do) or "text" (UnmarshalText: a string, whose content is
	// not checked here).
	GoDecoder string `json:"x-go-decoder,omitempty"`
	// GoEmbedded are, for a property promoted from embedded structs, the
	// embedded fields it is reached through.
	GoEmbedded []string `json:"x-go-embedded,omitempty"`
	// GoString marks a property with the ",string" option: its value is
	// JSON inside a JSON string, not checked here.
	GoString bool `json:"x-go-string,omitempty"`
	// GoInterface marks an interface type with methods: only null
	// decodes into it.
	GoInterface bool `json:"x-go-interface,omitempty"`
}

// The JSON Schema type names.
const (
	typeNull    = "null"
	typeBoolean = "boolean"
	typeInteger = "integer"
	typeNumber  = "number"
	typeString  = "string"
	typeArray   = "array"
	typeObject  = "object"
)

// Types is a schema's "type": one name, or a list of them. It is written
// as a string when it holds one name.
type Types []string

// MarshalJSON writes one type as a string and several as an array.
func (t Types) MarshalJSON() ([]byte, error) {
	if len(t) == 1 {
		return json.Marshal(t[0])
	}
	return json.Marshal([]string(t))
}

// UnmarshalJSON reads a string or an array of strings.
func (t *Types) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*t = Types{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return fmt.Errorf("type: want a string or an array of strings, got %s", data)
	}
	*t = many
	return nil
}

func (t Types) has(name string) bool {
	for _, n := range t {
		if n == name {
			return true
		}
	}
	return false
}

// Property is one property of an object schema.
type Property struct {
	Name   string
	Schema *Schema
}

// Properties are an object schema's properties in the Go struct's field
// order, which decides between names that differ only in case. They are
// written as a JSON object in that order.
type Properties []Property

// MarshalJSON writes the properties as one object, in order.
func (ps Properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(p.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(p.Schema)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of schemas, keeping its order. Unknown
// keywords in the schemas are errors.
func (ps *Properties) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("properties: want an object, got %s", data)
	}
	out := Properties{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		s := new(Schema)
		if err := dec.Decode(s); err != nil {
			return fmt.Errorf("properties.%s: %w", name, err)
		}
		out = append(out, Property{Name: name, Schema: s})
	}
	*ps = out
	return nil
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	numberType          = reflect.TypeFor[json.Number]()
	timeType            = reflect.TypeFor[time.Time]()
)

// SchemaOf returns the schema of the values json.Unmarshal decodes into a
// *T, where t is T: the schema of what a parameter or a payload of type T
// accepts. A type that refers to itself is described once under $defs.
func SchemaOf(t reflect.Type) *Schema {
	g := &generator{defs: map[reflect.Type]string{}, onStack: map[reflect.Type]bool{}}
	root := g.schema(reflect.PointerTo(t))
	// Describe each type referred to by $ref, and the ones those refer to.
	done := map[reflect.Type]bool{}
	for len(done) < len(g.defs) {
		for dt, key := range g.defs {
			if done[dt] {
				continue
			}
			done[dt] = true
			s := g.schema(dt)
			if root.Defs == nil {
				root.Defs = map[string]*Schema{}
			}
			root.Defs[key] = s
		}
	}
	return root
}

type generator struct {
	defs    map[reflect.Type]string // types that refer to themselves: their $defs key
	onStack map[reflect.Type]bool   // named composite types being described
}

// schema describes t as encoding/json's decoder treats a value of type t
// reached through a pointer, a struct field, or a slice, array or map
// element (all addressable, so pointer methods count).
func (g *generator) schema(t reflect.Type) *Schema {
	if t.Kind() == reflect.Pointer {
		// The decoder allocates the pointer and looks for an unmarshaler
		// on it before going on to what it points at; errors name the
		// pointer's type only for a text unmarshaler.
		if s := selfDecoding(t, t); s != nil {
			return s
		}
		return g.schema(t.Elem())
	}
	if t.Name() != "" {
		if s := selfDecoding(reflect.PointerTo(t), t); s != nil {
			return s
		}
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Slice, reflect.Array, reflect.Map:
		// Only a named type can refer to itself: describe it once.
		if t.Name() == "" {
			break
		}
		if g.onStack[t] {
			key, ok := g.defs[t]
			if !ok {
				key = defKey(t)
				g.defs[t] = key
			}
			return &Schema{Ref: "#/$defs/" + escapePointer(key)}
		}
		g.onStack[t] = true
		defer func() { g.onStack[t] = false }()
	}
	s := &Schema{GoType: t.String()}
	switch t.Kind() {
	case reflect.Bool:
		s.Type = Types{typeBoolean}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		s.Type, s.Format = Types{typeInteger}, "int"+strconv.Itoa(bits)
		s.Minimum = json.Number(strconv.FormatInt(math.MinInt64>>(64-bits), 10))
		s.Maximum = json.Number(strconv.FormatInt(math.MaxInt64>>(64-bits), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		bits := t.Bits()
		s.Type, s.Format = Types{typeInteger}, "uint"+strconv.Itoa(bits)
		s.Minimum = "0"
		s.Maximum = json.Number(strconv.FormatUint(math.MaxUint64>>(64-bits), 10))
	case reflect.Float32:
		s.Type, s.Format = Types{typeNumber}, "float"
	case reflect.Float64:
		s.Type, s.Format = Types{typeNumber}, "double"
	case reflect.String:
		s.Type = Types{typeString}
	case reflect.Interface:
		if t.NumMethod() > 0 {
			s.Type, s.GoInterface = Types{typeNull}, true
		}
	case reflect.Slice:
		s.Items = g.schema(t.Elem())
		s.Type = Types{typeArray}
		if t.Elem().Kind() == reflect.Uint8 {
			// A string is base64; an array of numbers decodes too.
			s.Type, s.ContentEncoding = Types{typeString, typeArray}, "base64"
		}
	case reflect.Array:
		s.Type, s.Items, s.GoLen = Types{typeArray}, g.schema(t.Elem()), t.Len()
		if t.Len() == 0 {
			s.GoLen = -1 // every element is ignored
		}
	case reflect.Map:
		k := t.Key()
		switch {
		case reflect.PointerTo(k).Implements(textUnmarshalerType):
		case k.Kind() == reflect.String:
		case isInteger(k.Kind()):
			s.GoKey = g.schema(k)
		default:
			s.Type = Types{typeNull} // keys of this type do not decode
			return s
		}
		s.Type, s.AdditionalProperties = Types{typeObject}, g.schema(t.Elem())
	case reflect.Struct:
		s.Type, s.GoName = Types{typeObject}, t.Name()
		s.Properties = Properties{}
		for _, f := range structFields(t) {
			ps := g.schema(f.typ)
			if len(f.embedded) > 0 || f.quoted {
				c := *ps // a $ref, or a schema of its own: annotate a copy
				ps = &c
				ps.GoEmbedded, ps.GoString = f.embedded, f.quoted
			}
			s.Properties = append(s.Properties, Property{Name: f.name, Schema: ps})
		}
	default: // complex numbers, channels, functions, unsafe pointers
		s.Type = Types{typeNull}
	}
	return s
}

// selfDecoding returns the schema of a type whose pointer p has an
// UnmarshalJSON or UnmarshalText method, or nil. named is the type its
// errors name.
func selfDecoding(p, named reflect.Type) *Schema {
	switch {
	case named == timeType || p == reflect.PointerTo(timeType):
		return &Schema{Type: Types{typeString}, Format: "date-time", GoType: named.String(), GoDecoder: "json"}
	case named == numberType:
		return &Schema{Type: Types{typeNumber, typeString}, GoType: named.String(), GoDecoder: "json"}
	case p.Implements(unmarshalerType):
		return &Schema{GoType: named.String(), GoDecoder: "json"}
	case p.Implements(textUnmarshalerType):
		return &Schema{Type: Types{typeString}, GoType: named.String(), GoDecoder: "text"}
	}
	return nil
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// defKey names a recursive type under $defs.
func defKey(t reflect.Type) string { return TypeID(t) }

// escapePointer escapes a JSON Pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func unescapePointer(s string) string {
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
}

// resolve follows a $ref of s against root's $defs.
func (s *Schema) resolve(root *Schema) (*Schema, error) {
	for s != nil && s.Ref != "" {
		key, ok := strings.CutPrefix(s.Ref, "#/$defs/")
		if !ok {
			return nil, fmt.Errorf("unsupported $ref %q", s.Ref)
		}
		d := root.Defs[unescapePointer(key)]
		if d == nil {
			return nil, fmt.Errorf("$ref %q: no such definition", s.Ref)
		}
		s = d
	}
	return s, nil
}

// TypeID is t's identity across binaries: the Go type with full package
// paths ("github.com/acme/app/hello.Request", "[]*example.com/x.T"), so
// that two types print alike only when they are the same type. (Type
// arguments of a generic type are as reflect names them.)
func TypeID(t reflect.Type) string {
	if t.Name() != "" {
		if t.PkgPath() == "" {
			return t.Name() // int, error
		}
		return t.PkgPath() + "." + t.Name()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + TypeID(t.Elem())
	case reflect.Slice:
		return "[]" + TypeID(t.Elem())
	case reflect.Array:
		return "[" + strconv.Itoa(t.Len()) + "]" + TypeID(t.Elem())
	case reflect.Map:
		return "map[" + TypeID(t.Key()) + "]" + TypeID(t.Elem())
	case reflect.Struct:
		var b strings.Builder
		b.WriteString("struct {")
		for i := range t.NumField() {
			f := t.Field(i)
			if i > 0 {
				b.WriteByte(';')
			}
			b.WriteByte(' ')
			if !f.Anonymous {
				if f.PkgPath != "" {
					b.WriteString(f.PkgPath + ".")
				}
				b.WriteString(f.Name + " ")
			}
			b.WriteString(TypeID(f.Type))
			if f.Tag != "" {
				b.WriteString(" " + strconv.Quote(string(f.Tag)))
			}
		}
		if t.NumField() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('}')
		return b.String()
	}
	return t.String() // func, chan and interface literals
}
