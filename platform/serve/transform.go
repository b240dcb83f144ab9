package serve

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/sluice-serve/sluice/cel"
)

// checkTransform refuses a transform whose checked type the target
// deployment cannot take: a string for a handler of numbers, a map for a
// handler of strings. A dynamic type (most of `body`) is checked when
// the request runs instead.
func checkTransform(expr string, target *Deployment) error {
	p, err := cel.Compile(expr, cel.Transform)
	if err != nil {
		return err
	}
	got := p.Type()
	want := celKinds(target.in)
	if want == nil || got == "dyn" {
		return nil
	}
	for _, k := range want {
		if got == k || strings.HasPrefix(got, k+"(") {
			return nil
		}
	}
	return fmt.Errorf("yields %s, but %s takes %s (want %s)", got, target.name, target.in, strings.Join(want, " or "))
}

// celKinds are the CEL types whose JSON a Go type decodes; nil: any.
func celKinds(t reflect.Type) []string {
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return []string{"string"}
	case reflect.Bool:
		return []string{"bool"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return []string{"int", "uint"}
	case reflect.Float32, reflect.Float64:
		return []string{"double", "int", "uint"}
	case reflect.Struct, reflect.Map:
		return []string{"map"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // []byte: raw payload
		}
		return []string{"list"}
	}
	return nil
}
