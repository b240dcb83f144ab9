package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validate reports whether raw decodes into the type s describes (a
// schema from SchemaOf), without the type: it returns the error
// json.Unmarshal would return, message for message, or nil. Where the
// type decodes itself (UnmarshalJSON, the content of UnmarshalText, a
// ",string" field) it accepts what the type might; that is refused when
// a replica decodes it.
func (s *Schema) Validate(raw []byte) error {
	if !json.Valid(raw) {
		var v any
		return json.Unmarshal(raw, &v) // the syntax error, as Unmarshal words it
	}
	v := &validator{root: s, dec: json.NewDecoder(bytes.NewReader(raw))}
	v.dec.UseNumber()
	if err := v.value(s); err != nil {
		return err
	}
	return v.saved
}

// validator walks a JSON value alongside a schema as encoding/json's
// decoder walks it alongside a Go value: the first type error is kept
// and the walk goes on, and errors inside struct fields name the struct
// and the field path the decoder names.
type validator struct {
	root  *Schema
	dec   *json.Decoder
	saved error

	// The decoder's error context: the innermost struct a field of which
	// is being decoded, and the field names from the outermost.
	inStruct bool
	strct    string
	fields   []string
}

func (v *validator) typeError(value, goType string) {
	if v.saved != nil {
		return
	}
	if v.inStruct || len(v.fields) > 0 {
		v.saved = fmt.Errorf("json: cannot unmarshal %s into Go struct field %s.%s of type %s", value, v.strct, strings.Join(v.fields, "."), goType)
		return
	}
	v.saved = fmt.Errorf("json: cannot unmarshal %s into Go value of type %s", value, goType)
}

func (v *validator) save(err error) {
	if v.saved == nil {
		v.saved = err
	}
}

func (v *validator) value(s *Schema) error {
	tok, err := v.dec.Token()
	if err != nil {
		return err
	}
	return v.token(s, tok)
}

// token checks the value that starts with tok against s.
func (v *validator) token(s *Schema, tok json.Token) error {
	s, err := s.resolve(v.root)
	if err != nil {
		return err
	}
	if s.GoDecoder == "json" || s.GoString {
		return v.skip(tok)
	}
	text := s.GoDecoder == "text"
	anything := len(s.Type) == 0 && !text
	switch t := tok.(type) {
	case nil:
		return nil
	case json.Delim:
		kind, want := "object", typeObject
		if t == '[' {
			kind, want = "array", typeArray
		}
		switch {
		case anything:
			return v.anyRest(t)
		case text || !s.Type.has(want):
			v.typeError(kind, s.GoType)
			return v.skip(t)
		case t == '[':
			return v.array(s)
		case s.AdditionalProperties != nil:
			return v.mapObject(s)
		default:
			return v.structObject(s)
		}
	case string:
		switch {
		case text, anything:
		case !s.Type.has(typeString):
			v.typeError("string", s.GoType)
		case s.ContentEncoding == "base64":
			if _, err := base64.StdEncoding.DecodeString(t); err != nil {
				v.save(err)
			}
		}
	case bool:
		if !anything && (text || !s.Type.has(typeBoolean)) {
			v.typeError("bool", s.GoType)
		}
	case json.Number:
		lit := string(t)
		switch {
		case anything:
			if _, err := strconv.ParseFloat(lit, 64); err != nil {
				v.typeError("number "+lit, "float64")
			}
		case text:
			v.typeError("number", s.GoType)
		case s.GoInterface:
			// The decoder reads the number before it finds nowhere to put it.
			if _, err := strconv.ParseFloat(lit, 64); err != nil {
				v.typeError("number "+lit, "float64")
			} else {
				v.typeError("number", s.GoType)
			}
		case s.Type.has(typeInteger):
			if !fitsInteger(lit, s.Format) {
				v.typeError("number "+lit, s.GoType)
			}
		case s.Type.has(typeNumber):
			bits := 64
			if s.Format == "float" {
				bits = 32
			}
			if _, err := strconv.ParseFloat(lit, bits); err != nil {
				v.typeError("number "+lit, s.GoType)
			}
		default:
			v.typeError("number", s.GoType)
		}
	}
	return nil
}

// fitsInteger reports whether lit is an integer literal in the range of
// format ("int8" ... "uint64"), as strconv reads it.
func fitsInteger(lit, format string) bool {
	if b, ok := strings.CutPrefix(format, "uint"); ok {
		bits, _ := strconv.Atoi(b)
		n, err := strconv.ParseUint(lit, 10, 64)
		return err == nil && (bits <= 0 || bits >= 64 || n < 1<<bits)
	}
	bits, _ := strconv.Atoi(strings.TrimPrefix(format, "int"))
	n, err := strconv.ParseInt(lit, 10, 64)
	return err == nil && (bits <= 0 || bits >= 64 || -1<<(bits-1) <= n && n < 1<<(bits-1))
}

func (v *validator) array(s *Schema) error {
	for i := 0; v.dec.More(); i++ {
		var err error
		if s.GoLen < 0 || s.GoLen > 0 && i >= s.GoLen {
			err = v.skipValue() // past a Go array's end
		} else {
			err = v.value(s.Items)
		}
		if err != nil {
			return err
		}
	}
	_, err := v.dec.Token()
	return err
}

func (v *validator) structObject(s *Schema) error {
	inStruct, strct, depth := v.inStruct, v.strct, len(v.fields)
	for v.dec.More() {
		key, err := v.key()
		if err != nil {
			return err
		}
		p := s.Properties.lookup(key)
		if p == nil {
			if err := v.skipValue(); err != nil {
				return err
			}
			continue
		}
		v.fields = append(append(v.fields, p.Schema.GoEmbedded...), p.Name)
		v.inStruct, v.strct = true, s.GoName
		if err := v.value(p.Schema); err != nil {
			return err
		}
		v.inStruct, v.strct, v.fields = inStruct, strct, v.fields[:depth]
	}
	_, err := v.dec.Token()
	return err
}

func (v *validator) mapObject(s *Schema) error {
	for v.dec.More() {
		key, err := v.key()
		if err != nil {
			return err
		}
		if err := v.value(s.AdditionalProperties); err != nil {
			return err
		}
		if s.GoKey != nil {
			k, err := s.GoKey.resolve(v.root)
			if err != nil {
				return err
			}
			if !fitsInteger(key, k.Format) {
				v.typeError("number "+key, k.GoType)
			}
		}
	}
	_, err := v.dec.Token()
	return err
}

func (v *validator) key() (string, error) {
	tok, err := v.dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("object key %v is not a string", tok)
	}
	return key, nil
}

// anyRest checks the rest of an array or object decoded into an empty
// interface: only a number beyond float64 fails there.
func (v *validator) anyRest(d json.Delim) error {
	for v.dec.More() {
		if d == '{' {
			if _, err := v.key(); err != nil {
				return err
			}
		}
		tok, err := v.dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case json.Delim:
			err = v.anyRest(t)
		case json.Number:
			if _, perr := strconv.ParseFloat(string(t), 64); perr != nil {
				v.typeError("number "+string(t), "float64")
			}
		}
		if err != nil {
			return err
		}
	}
	_, err := v.dec.Token()
	return err
}

func (v *validator) skipValue() error {
	tok, err := v.dec.Token()
	if err != nil {
		return err
	}
	return v.skip(tok)
}

// skip consumes the rest of the value that starts with tok.
func (v *validator) skip(tok json.Token) error {
	if _, ok := tok.(json.Delim); !ok {
		return nil
	}
	for depth := 1; depth > 0; {
		tok, err := v.dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
	return nil
}

// lookup finds the property a JSON key decodes into: the one of that
// name, else the first whose name equals it folding case.
func (ps Properties) lookup(key string) *Property {
	for i := range ps {
		if ps[i].Name == key {
			return &ps[i]
		}
	}
	folded := foldName(key)
	for i := range ps {
		if foldName(ps[i].Name) == folded {
			return &ps[i]
		}
	}
	return nil
}

// foldName folds s as encoding/json matches keys to fields: ASCII
// letters to upper case, other runes to the smallest of their fold set.
func foldName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}
