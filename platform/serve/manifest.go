package serve

import (
	"reflect"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/sluice-serve/sluice/platform/bundle"
)

// Manifest describes what this binary offers: every handler of the
// registry (sorted by name) with its kind, payload types and constructor
// parameters, and the applications built in. Registry.Check checks specs
// against it, as the platform checks them against a code bundle's. It is
// built once and shared: do not modify it.
func (r *Registry) Manifest() bundle.Manifest {
	r.once.Do(func() { r.manifest = r.buildManifest() })
	return r.manifest
}

func (r *Registry) buildManifest() bundle.Manifest {
	m := bundle.Manifest{Format: bundle.FormatVersion, Protocol: bundle.ProtocolVersion, SDK: sdk(), Handlers: []bundle.Handler{}}
	names := make([]string, 0, len(r.deps))
	for n := range r.deps {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		m.Handlers = append(m.Handlers, r.deps[n].manifest())
	}
	for _, a := range r.apps {
		m.Apps = append(m.Apps, a.Spec())
	}
	return m
}

var (
	reconfigurerType  = reflect.TypeFor[Reconfigurer]()
	healthCheckerType = reflect.TypeFor[HealthChecker]()
)

// manifest describes the deployment as a handler. The hooks are those of
// the constructor's result type: a constructor that returns an interface
// has them only if the interface does.
func (d *Deployment) manifest() bundle.Handler {
	h := bundle.Handler{Name: d.name, Kind: bundle.KindUnary, Input: payloadType(d.in), Output: payloadType(d.out)}
	switch {
	case d.streams:
		h.Kind = bundle.KindStream
	case d.batches:
		h.Kind = bundle.KindBatch
	case d.http:
		h.Kind = bundle.KindHTTP
	}
	if !d.ctor.IsValid() {
		h.Func = true
		return h
	}
	t := d.ctor.Type() // checked by NewRegistry: a function returning (T) or (T, error)
	for i := range t.NumIn() {
		pt := t.In(i)
		a := bundle.Arg{Type: bundle.Type{Go: pt.String(), ID: bundle.TypeID(pt)}}
		if isHandleType(pt) && pt.Kind() == reflect.Pointer {
			in, out := reflect.New(pt.Elem()).Interface().(handleParam).types()
			inT, outT := payloadType(in), payloadType(out)
			a.Handle, a.Input, a.Output = true, &inT, &outT
		} else {
			a.Encoding, a.Schema = bundle.EncodingJSON, bundle.SchemaOf(pt) // args travel as JSON
		}
		h.Args = append(h.Args, a)
	}
	result := t.Out(0)
	h.Reconfigure = result.Implements(reconfigurerType)
	h.HealthCheck = result.Implements(healthCheckerType)
	return h
}

// payloadType describes a type handlers take or return, as encode and
// decode carry it.
func payloadType(t reflect.Type) bundle.Type {
	bt := bundle.Type{Go: t.String(), ID: bundle.TypeID(t), Encoding: encodingOf(t)}
	if bt.Encoding == bundle.EncodingOIP {
		// The compact tensor payload, not JSON: say so and no more.
		bt.Schema = &bundle.Schema{Type: bundle.Types{"object"}, Sluice: "oip", GoType: t.String()}
		return bt
	}
	bt.Schema = bundle.SchemaOf(t)
	return bt
}

// modulePath is the SDK's module, as this package's import path says.
var modulePath = strings.TrimSuffix(reflect.TypeFor[Registry]().PkgPath(), "/platform/serve")

// sdk says what built this binary: the SDK's version as the build info
// records it (the main module's for the stock binary, a dependency's for
// a user's; "(devel)" when replaced by a work tree).
func sdk() bundle.SDK {
	s := bundle.SDK{Language: bundle.LanguageGo, Version: "(unknown)", Runtime: goruntime.Version(), Platform: goruntime.GOOS + "/" + goruntime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return s
	}
	if bi.Main.Path == modulePath {
		s.Version = bi.Main.Version
		return s
	}
	for _, dep := range bi.Deps {
		if dep.Path != modulePath {
			continue
		}
		s.Version = dep.Version
		if dep.Replace != nil {
			s.Version = dep.Replace.Version
			if s.Version == "" {
				s.Version = "(devel)"
			}
		}
	}
	return s
}
