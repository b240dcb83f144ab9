package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/sluice-serve/sluice/cel"
	"github.com/sluice-serve/sluice/platform/spec"
)

// ReflectCheck is Registry.Check as it was before manifests: the live
// types, reflect and json.Unmarshal instead of the manifest's schemas. The
// tests hold bundle.Check to its words (its only change: the handler
// names sorted).
func ReflectCheck(r *Registry, app *spec.App) error {
	var errs []error
	byName := map[string]*Deployment{}
	for _, dep := range app.Deployments {
		byName[dep.Name] = r.deps[dep.Handler]
	}
	for i, e := range app.Edges {
		if e.Transform == "" {
			continue
		}
		if d := byName[e.To]; d != nil {
			if err := oracleTransform(e.Transform, d); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", app.Locate(fmt.Sprintf("edges[%d].transform", i)), err))
			}
		}
	}
	names := make([]string, 0, len(r.deps))
	for n := range r.deps {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, dep := range app.Deployments {
		if dep.Kind == spec.KindModel || dep.Kind == spec.KindCEL {
			continue
		}
		d := r.deps[dep.Handler]
		if d == nil {
			errs = append(errs, fmt.Errorf("deployments[%d].handler: %w %q (this binary has %v)", i, ErrUnknownHandler, dep.Handler, names))
			continue
		}
		if err := oracleSpec(d, dep, byName); err != nil {
			errs = append(errs, fmt.Errorf("deployments[%d]: %w", i, err))
		}
		if dep.Batching.MaxBatchSize > 0 && !d.batches {
			errs = append(errs, fmt.Errorf("deployments[%d].batching: handler %s is not a batch handler (write it with serve.BatchFunc)", i, dep.Handler))
		}
	}
	return errors.Join(errs...)
}

func oracleSpec(d *Deployment, dep spec.Deployment, byName map[string]*Deployment) error {
	if !d.ctor.IsValid() {
		if len(dep.Args) > 0 {
			return fmt.Errorf("args: handler %s is a function and takes no arguments", d.name)
		}
		return nil
	}
	t := d.ctor.Type()
	if len(dep.Args) != t.NumIn() {
		return fmt.Errorf("args: handler %s takes %d arguments, got %d", d.name, t.NumIn(), len(dep.Args))
	}
	for i, a := range dep.Args {
		pt := t.In(i)
		if a.Handle != "" {
			target := byName[a.Handle]
			if target == nil {
				continue
			}
			if err := checkHandleParam(pt, target); err != nil {
				return fmt.Errorf("args[%d]: %w", i, err)
			}
			continue
		}
		if isHandleType(pt) {
			return fmt.Errorf("args[%d]: parameter is a handle, give {handle: DEPLOYMENT}", i)
		}
		if err := json.Unmarshal(a.Value, reflect.New(pt).Interface()); err != nil {
			return fmt.Errorf("args[%d]: value %s does not fit parameter type %s: %v", i, a.Value, pt, err)
		}
	}
	return nil
}

func oracleTransform(expr string, target *Deployment) error {
	p, err := cel.Compile(expr, cel.Transform)
	if err != nil {
		return err
	}
	got := p.Type()
	want := oracleKinds(target.in)
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

func oracleKinds(t reflect.Type) []string {
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
			return nil
		}
		return []string{"list"}
	}
	return nil
}
