package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-serve/sluice/cel"
	"github.com/sluice-serve/sluice/platform/spec"
)

// ErrUnknownHandler is wrapped when a spec names a handler the binary
// lacks.
var ErrUnknownHandler = errors.New("unknown handler")

// Check reports every way app cannot run on the binary m describes:
// unknown handlers, arguments that do not fit constructors, handles of
// the wrong type, batching options on a handler that does not batch, and
// CEL edge transforms whose type the target handler cannot decode, and
// HTTP ingress handlers used as anything but the application's ingress
// (a deployment elsewhere in the graph, the target of an edge or a
// handle) or as the source of an edge, or not marked as one (spec.Deployment.HTTP, which the platform
// sets from the manifest when it pins the code, and the gateway's route
// reads), or a mark on any other handler. Each error starts with the
// place in the YAML (file:line:col) when app was parsed from a file.
func Check(app *spec.App, m Manifest) error {
	handlers := make(map[string]*Handler, len(m.Handlers))
	for i := range m.Handlers {
		handlers[m.Handlers[i].Name] = &m.Handlers[i]
	}
	byName := map[string]*Handler{} // deployment name → its handler
	for _, dep := range app.Deployments {
		byName[dep.Name] = handlers[dep.Handler]
	}
	var errs []error
	for i, e := range app.Edges {
		if h := byName[e.From]; h != nil && h.ServesHTTP() {
			errs = append(errs, fmt.Errorf("%s: %w", app.Locate(fmt.Sprintf("edges[%d]", i)), errHTTPSource(e.From, h, e.To)))
		}
		if h := byName[e.To]; h != nil && h.ServesHTTP() {
			errs = append(errs, fmt.Errorf("%s: %w", app.Locate(fmt.Sprintf("edges[%d]", i)), errHTTPTarget(e.To, h)))
			continue
		}
		if e.Transform == "" {
			continue
		}
		if h := byName[e.To]; h != nil {
			if err := checkTransform(e.Transform, h); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", app.Locate(fmt.Sprintf("edges[%d].transform", i)), err))
			}
		}
	}
	for i, dep := range app.Deployments {
		if dep.Kind == spec.KindModel || dep.Kind == spec.KindCEL {
			continue // the built-in model server, or rules only
		}
		p := fmt.Sprintf("deployments[%d]", i)
		h := handlers[dep.Handler]
		if h == nil {
			errs = append(errs, fmt.Errorf("%s%s.handler: %w %q (this binary has %v)", at(app, p+".handler"), p, ErrUnknownHandler, dep.Handler, handlerNames(m)))
			continue
		}
		if field, err := checkArgs(h, dep, byName); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", at(app, p+"."+field), p, err))
		}
		switch {
		case h.ServesHTTP() && dep.Name != app.Ingress:
			errs = append(errs, fmt.Errorf("%s%s.handler: handler %s is an HTTP ingress (serve.HTTP): it can only be the application's ingress deployment, which is %s",
				at(app, p+".handler"), p, h.Name, app.Ingress))
		case h.ServesHTTP() && !dep.HTTP:
			errs = append(errs, fmt.Errorf("%s%s: handler %s is an HTTP ingress (serve.HTTP), but the deployment is not marked as one, so the gateway would call it as a plain route: deploy the application through the platform's API (sluice deploy), which marks it",
				at(app, p), p, h.Name))
		case dep.HTTP && !h.ServesHTTP():
			errs = append(errs, fmt.Errorf("%s%s: marked as an HTTP ingress, but handler %s is a %s handler: deploy the application again", at(app, p), p, h.Name, h.Kind))
		}
		if dep.Batching.MaxBatchSize > 0 && !h.Batches() {
			errs = append(errs, fmt.Errorf("%s%s.batching: handler %s is not a batch handler (write it with serve.BatchFunc)", at(app, p+".batching"), p, h.Name))
		}
	}
	return errors.Join(errs...)
}

// at is the place of field path in app's YAML followed by ": ", or "".
func at(app *spec.App, path string) string {
	if pos := app.Position(path); pos != "" {
		return pos + ": "
	}
	return ""
}

func handlerNames(m Manifest) []string {
	names := make([]string, len(m.Handlers))
	for i, h := range m.Handlers {
		names[i] = h.Name
	}
	slices.Sort(names)
	return names
}

// checkArgs checks a deployment's args against its handler's
// constructor, returning the field of the first that does not fit.
func checkArgs(h *Handler, dep spec.Deployment, byName map[string]*Handler) (string, error) {
	if h.Func {
		if len(dep.Args) > 0 {
			return "args", fmt.Errorf("args: handler %s is a function and takes no arguments", h.Name)
		}
		return "", nil
	}
	if least := h.RequiredArgs(); len(dep.Args) < least || len(dep.Args) > len(h.Args) {
		takes := strconv.Itoa(len(h.Args))
		if least < len(h.Args) {
			takes = fmt.Sprintf("%d to %d", least, len(h.Args))
		}
		return "args", fmt.Errorf("args: handler %s takes %s arguments, got %d", h.Name, takes, len(dep.Args))
	}
	for i, a := range dep.Args {
		field := fmt.Sprintf("args[%d]", i)
		param := h.Args[i]
		if a.Handle != "" {
			target := byName[a.Handle]
			if target == nil {
				continue // reported against the target's own handler
			}
			if target.ServesHTTP() {
				return field, fmt.Errorf("%s: %w", field, errHTTPTarget(a.Handle, target))
			}
			if !param.Handle {
				if param.ID == TypeAny {
					continue // its SDK states no type (Python without an annotation): a handle too
				}
				return field, fmt.Errorf("%s: parameter type %s is not a *serve.Handle, cannot take bound deployment %s", field, param.Go, target.Name)
			}
			if !fits(param.Input, &target.Input) || !fits(param.Output, &target.Output) {
				return field, fmt.Errorf("%s: parameter %s does not match deployment %s, which takes %s and returns %s", field, param.Go, target.Name, target.Input.Go, target.Output.Go)
			}
			continue
		}
		if param.Handle {
			return field, fmt.Errorf("%s: parameter is a handle, give {handle: DEPLOYMENT}", field)
		}
		if param.Schema == nil {
			continue
		}
		if err := param.Schema.Validate(a.Value); err != nil {
			return field, fmt.Errorf("%s: value %s does not fit parameter type %s: %v", field, a.Value, param.Go, err)
		}
	}
	return "", nil
}

func errHTTPTarget(dep string, h *Handler) error {
	return fmt.Errorf("deployment %s runs HTTP ingress handler %s: it takes HTTP requests from the gateway only, not records along an edge or from a handle", dep, h.Name)
}

// errHTTPSource refuses an edge from an HTTP ingress: its response
// (status, headers, each flushed part) answers the HTTP caller, and sent
// along an edge it would be lost, each part a request of its own.
func errHTTPSource(dep string, h *Handler, to string) error {
	return fmt.Errorf("deployment %s runs HTTP ingress handler %s: its response answers the HTTP caller and cannot go along an edge: remove the edge and call %s through a handle (a *serve.Handle parameter of %s's constructor, args: [{handle: %s}])", dep, h.Name, to, h.Name, to)
}

// fits reports whether a handle's type fits the deployment's: the same
// type, or one side untyped (TypeAny: Python states no payload types, so
// a handle from Go to Python, or from Python to Go, is checked by name
// and kind alone, and the payload when the request runs).
func fits(a, b *Type) bool {
	if a != nil && a.ID == TypeAny || b != nil && b.ID == TypeAny {
		return true
	}
	return sameType(a, b)
}

// sameType reports whether a handle's type is the deployment's: the same
// Go type, travelling the same way, with the same schema.
func sameType(a, b *Type) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.ID != b.ID || a.Encoding != b.Encoding {
		return false
	}
	sa, err1 := json.Marshal(a.Schema)
	sb, err2 := json.Marshal(b.Schema)
	return err1 == nil && err2 == nil && bytes.Equal(sa, sb)
}

// checkTransform refuses a transform whose checked type the target
// handler cannot take: a string for a handler of numbers, a map for a
// handler of strings. A dynamic type (most of `body`) is checked when
// the request runs instead.
func checkTransform(expr string, target *Handler) error {
	p, err := cel.Compile(expr, cel.Transform)
	if err != nil {
		return err
	}
	got := p.Type()
	want := celKinds(target.Input)
	if want == nil || got == "dyn" {
		return nil
	}
	for _, k := range want {
		if got == k || strings.HasPrefix(got, k+"(") {
			return nil
		}
	}
	return fmt.Errorf("yields %s, but %s takes %s (want %s)", got, target.Name, target.Input.Go, strings.Join(want, " or "))
}

// celKinds are the CEL types whose JSON a payload type decodes; nil: any.
func celKinds(t Type) []string {
	switch t.Encoding {
	case EncodingBinary:
		return nil // raw bytes: anything
	case EncodingText:
		return []string{"string"}
	}
	if t.Schema == nil {
		return nil
	}
	s, err := t.Schema.resolve(t.Schema)
	if err != nil || s.GoDecoder == "json" && len(s.Type) == 0 {
		return nil
	}
	var kinds []string
	add := func(ks ...string) {
		for _, k := range ks {
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	for _, typ := range s.Type {
		switch typ {
		case typeString:
			add("string")
		case typeBoolean:
			add("bool")
		case typeInteger:
			add("int", "uint")
		case typeNumber:
			add("double", "int", "uint")
		case typeObject:
			add("map")
		case typeArray:
			add("list")
		}
	}
	return kinds
}
