// Package bundle describes user code as an artifact. A binary built with
// the SDK states what it offers in a Manifest: its handlers with their
// kinds, payload types and constructor arguments (as JSON Schemas of the
// Go types), and the applications built into it. Check then tells
// whether an application can run on that binary from the manifest alone,
// so the platform can validate a deploy against a code bundle it does not
// run itself.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluice-serve/sluice/platform/spec"
)

// FormatVersion is the manifest format this package writes and reads. A
// change that an older reader would misread gets a new version.
const FormatVersion = 1

// Record protocol levels a manifest states (Manifest.Protocol): what the
// SDK that built the binary reads and writes on Kafka (docs/PROTOCOL.md).
// A level is added when records an older SDK would misread without
// failing start to flow; the format stays, so older manifests decode.
const (
	// ProtocolClaims reads and writes claim checks (sl-claim): a value
	// over the threshold in the blob store, not in its record. An SDK
	// before it hands a claimed record's handler an empty value.
	ProtocolClaims = 1
	// ProtocolVersion is the level this SDK writes.
	ProtocolVersion = ProtocolClaims
)

// SDK languages.
const (
	LanguageGo     = "go"     // Go binaries
	LanguagePython = "python" // python-project bundles: `python -m sluice describe`
)

// TypeAny is the type ID of a value its SDK states no type for (every
// Python payload): it fits any type.
const TypeAny = "python:any"

// Handler kinds.
const (
	KindUnary  = "unary"  // Func or Type: one output per input
	KindStream = "stream" // StreamFunc or StreamType: any number of outputs
	KindBatch  = "batch"  // BatchFunc: inputs grouped into one call; takes batching options
	// KindHTTP is an HTTP ingress (serve.HTTP): it takes whole HTTP
	// requests from the gateway and answers HTTP responses, so it can only
	// be its application's ingress. Its input and output are the bodies.
	KindHTTP = "http"
)

// Payload encodings: how a value of a type travels on Kafka.
const (
	EncodingJSON   = "json"   // encoding/json
	EncodingText   = "text"   // a string, raw
	EncodingBinary = "binary" // a []byte, raw
	EncodingOIP    = "oip"    // an Open Inference Protocol request or response, as its compact tensor payload
)

// Manifest is what an SDK binary offers: `BINARY describe --json` prints
// it.
type Manifest struct {
	Format int `json:"format"`
	// Protocol is the record protocol level the binary speaks
	// (ProtocolClaims...); 0, omitted, in manifests written before
	// levels.
	Protocol int         `json:"protocol,omitempty"`
	SDK      SDK         `json:"sdk"`
	Handlers []Handler   `json:"handlers"`       // sorted by name
	Apps     []*spec.App `json:"apps,omitempty"` // the applications built into the binary
}

// SDK says what built the binary.
type SDK struct {
	Language string `json:"language"` // "go"
	Version  string `json:"version"`  // the SDK module's version, "(devel)" for a build from a work tree
	Runtime  string `json:"runtime"`  // "go1.26.8"
	Platform string `json:"platform"` // GOOS/GOARCH: "linux/amd64"
	// Entry is where an SDK that loads code by name finds the
	// application the manifest describes: MODULE:ATTR for Python. Its
	// replicas import it and find their deployment in its graph.
	Entry string `json:"entry,omitempty"`
}

// Handler is one deployment the binary can run, by the name specs give
// as a deployment's handler.
type Handler struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // KindUnary, KindStream, KindBatch or KindHTTP
	Input  Type   `json:"input"`
	Output Type   `json:"output"`
	// Func is set for a plain function (Func, StreamFunc, BatchFunc): it
	// has no constructor and takes no arguments. Otherwise Args are its
	// constructor's parameters in order.
	Func bool  `json:"func,omitempty"`
	Args []Arg `json:"args,omitempty"`
	// Reconfigure: the constructed value takes user_config live
	// (serve.Reconfigurer).
	Reconfigure bool `json:"reconfigure,omitempty"`
	// HealthCheck: the constructed value reports its health
	// (serve.HealthChecker).
	HealthCheck bool `json:"health_check,omitempty"`
}

// Batches reports whether the handler takes batching options.
func (h *Handler) Batches() bool { return h.Kind == KindBatch }

// ServesHTTP reports whether the handler is an HTTP ingress.
func (h *Handler) ServesHTTP() bool { return h.Kind == KindHTTP }

// RequiredArgs is how many of the constructor's parameters a spec must
// give: those before the first optional one.
func (h *Handler) RequiredArgs() int {
	for i, a := range h.Args {
		if a.Optional {
			return i
		}
	}
	return len(h.Args)
}

// Type is a Go type a handler takes, returns or is constructed with.
type Type struct {
	// Go is the type as Go prints it ("hello.Request"), for messages.
	Go string `json:"go"`
	// ID is the type's identity, with full package paths (TypeID).
	ID string `json:"id"`
	// Encoding is how a payload of the type travels (Encoding*); empty
	// for a handle parameter.
	Encoding string `json:"encoding,omitempty"`
	// Schema is what the type's JSON accepts (SchemaOf); nil for a
	// handle parameter.
	Schema *Schema `json:"schema,omitempty"`
}

// Arg is one constructor parameter: a value given in the spec's args as
// JSON, or a handle to another deployment of the application
// ({handle: NAME}).
type Arg struct {
	Type        // the parameter's type
	Handle bool `json:"handle,omitempty"`
	// Optional is set for a parameter with a default: a spec may leave it
	// out, and every parameter after it (all optional too).
	Optional bool `json:"optional,omitempty"`
	// Input and Output are what the handle's deployment must take and
	// return.
	Input  *Type `json:"input,omitempty"`
	Output *Type `json:"output,omitempty"`
}

// Handler returns the handler named name, or nil.
func (m *Manifest) Handler(name string) *Handler {
	for i := range m.Handlers {
		if m.Handlers[i].Name == name {
			return &m.Handlers[i]
		}
	}
	return nil
}

// Encode writes the manifest as indented JSON.
func (m Manifest) Encode() ([]byte, error) {
	return json.MarshalIndent(m, "", "  ")
}

// ErrProtocol is wrapped by CheckProtocol: a binary built by an SDK that
// does not speak the record protocol the platform sends.
var ErrProtocol = errors.New("built for an older record protocol")

// CheckProtocol reports a binary whose protocol level is below min: the
// level, what it lacks, and that it must be rebuilt.
func (m *Manifest) CheckProtocol(min int) error {
	if m.Protocol >= min {
		return nil
	}
	return fmt.Errorf("%w (level %d, the platform needs %d: claim checks, sl-claim): rebuild it with the current SDK and push it again", ErrProtocol, m.Protocol, min)
}

// ErrFormat is wrapped by Decode when a manifest's format is not one this
// package reads.
var ErrFormat = errors.New("unsupported manifest format")

// Decode reads a manifest strictly (an unknown field is an error) and
// validates it.
func Decode(data []byte) (Manifest, error) {
	var probe struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if probe.Format != FormatVersion {
		return Manifest{}, fmt.Errorf("%w %d: this platform reads format %d", ErrFormat, probe.Format, FormatVersion)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	return m, m.Validate()
}

// Validate reports every field of the manifest that Check could not rely
// on, by path.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("manifest: %s: %s", path, fmt.Sprintf(format, args...)))
	}
	if m.Format != FormatVersion {
		bad("format", "%d, want %d", m.Format, FormatVersion)
	}
	if m.Protocol < 0 {
		bad("protocol", "%d, want a level of 0 or more", m.Protocol)
	}
	if m.SDK.Language == "" {
		bad("sdk.language", "empty")
	}
	seen := map[string]bool{}
	for i, h := range m.Handlers {
		p := fmt.Sprintf("handlers[%d]", i)
		switch {
		case h.Name == "":
			bad(p+".name", "empty")
		case seen[h.Name]:
			bad(p+".name", "%s is listed twice", h.Name)
		}
		seen[h.Name] = true
		switch h.Kind {
		case KindUnary, KindStream, KindBatch, KindHTTP:
		default:
			bad(p+".kind", "%q, want %s, %s, %s or %s", h.Kind, KindUnary, KindStream, KindBatch, KindHTTP)
		}
		checkType := func(path string, t *Type, payload bool) {
			switch {
			case t == nil:
				bad(path, "missing")
			case t.Go == "" || t.ID == "":
				bad(path, "the type has no go or id")
			case payload && t.Schema == nil:
				bad(path+".schema", "missing")
			}
		}
		checkType(p+".input", &h.Input, true)
		checkType(p+".output", &h.Output, true)
		if h.Func && len(h.Args) > 0 {
			bad(p+".args", "a function takes no arguments")
		}
		for j, a := range h.Args {
			ap := fmt.Sprintf("%s.args[%d]", p, j)
			checkType(ap, &a.Type, !a.Handle)
			if j > 0 && h.Args[j-1].Optional && !a.Optional {
				bad(ap, "a required parameter after an optional one")
			}
			if a.Handle {
				checkType(ap+".input", a.Input, true)
				checkType(ap+".output", a.Output, true)
			}
		}
	}
	for i, a := range m.Apps {
		if a == nil {
			bad(fmt.Sprintf("apps[%d]", i), "null")
			continue
		}
		if err := a.Validate(); err != nil {
			bad(fmt.Sprintf("apps[%d]", i), "application %s: %v", a.Name, err)
		}
	}
	return errors.Join(errs...)
}
