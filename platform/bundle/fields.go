package bundle

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// The JSON fields of a struct, chosen as encoding/json chooses them (its
// typeFields, without what only encoding needs): tags, "-", embedded
// structs promoted, fields hidden by Go's rules for embedded fields left
// out, in the order of their index sequences.

type jsonField struct {
	name     string
	tagged   bool
	index    []int
	typ      reflect.Type // the field's type, as declared
	quoted   bool         // the ",string" option, on a type it applies to
	embedded []string     // the embedded fields it is promoted through
}

func structFields(t reflect.Type) []jsonField {
	type level struct {
		typ      reflect.Type
		index    []int
		embedded []string
	}
	current, next := []level{}, []level{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	var fields []jsonField
	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validTag(name) {
					name = ""
				}
				index := append(slices.Clone(f.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					quoted := false
					if hasOption(opts, "string") {
						switch ft.Kind() {
						case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64:
							quoted = true
						default:
							quoted = isInteger(ft.Kind())
						}
					}
					jf := jsonField{name: name, tagged: name != "", index: index, typ: sf.Type, quoted: quoted, embedded: f.embedded}
					if jf.name == "" {
						jf.name = sf.Name
					}
					fields = append(fields, jf)
					if count[f.typ] > 1 {
						// Twice, so that the pruning below sees the conflict.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, level{typ: ft, index: index, embedded: append(slices.Clone(f.embedded), sf.Name)})
				}
			}
		}
	}
	slices.SortFunc(fields, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return +1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0]
	for advance, i := 0, 0; i < len(fields); i += advance {
		fi := fields[i]
		for advance = 1; i+advance < len(fields) && fields[i+advance].name == fi.name; advance++ {
		}
		if advance == 1 {
			out = append(out, fi)
			continue
		}
		// The shallowest, tagged first, wins, unless two tie.
		if f1 := fields[i+1]; len(fi.index) == len(f1.index) && fi.tagged == f1.tagged {
			continue
		}
		out = append(out, fi)
	}
	slices.SortFunc(out, func(a, b jsonField) int { return slices.Compare(a.index, b.index) })
	return out
}

func hasOption(opts, name string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == name {
			return true
		}
	}
	return false
}

func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
