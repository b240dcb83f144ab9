// Package registry keeps versions of two kinds of artifact, models and
// code bundles (user code the platform runs): their files in object
// storage (MinIO, or a local directory in `sluice dev`), their metadata and
// aliases as events on a compacted Kafka topic. The topic is the system of
// record: every event carries the entry's whole state after the change, so
// compaction by entry keeps everything, and any process (the registry
// after a restart, a replica, the controller) rebuilds the state by reading
// it from the start.
package registry

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// Kind is what a registry entry holds: a model's weights, or user code.
type Kind string

// The kinds.
const (
	KindModel Kind = "model"
	KindCode  Kind = "code"
)

func (k Kind) noun() string {
	if k == KindCode {
		return "code bundle"
	}
	return "model"
}

// versionOf is what Set needs of a version: its number, kind and files.
type versionOf interface {
	Version | BundleVersion
	number() string
	kind() Kind
	files() []File
	labels() map[string]string
}

// Set is one named artifact with its versions and aliases: a Model or a
// Bundle. Both kinds share numbering, aliases and lookups.
type Set[V versionOf] struct {
	Name     string            `json:"name"`
	Versions []V               `json:"versions"` // ascending
	Aliases  map[string]string `json:"aliases,omitempty"`
}

// Model is a model with its versions and aliases.
type Model = Set[Version]

// Version is one published version.
type Version struct {
	Model   string            `json:"model"`
	Version string            `json:"version"`
	Format  string            `json:"format,omitempty"`
	Inputs  []spec.TensorSpec `json:"inputs,omitempty"`
	Outputs []spec.TensorSpec `json:"outputs,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Files   []File            `json:"files"`
	Size    int64             `json:"size"`
	Created time.Time         `json:"created"`
}

func (v Version) number() string            { return v.Version }
func (Version) kind() Kind                  { return KindModel }
func (v Version) files() []File             { return v.Files }
func (v Version) labels() map[string]string { return v.Labels }

// File is one file of a version's artifact.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Event is one change, with the entry's state after it. A model's event
// names it in Model and carries State; a code bundle's has Kind KindCode,
// names it in Bundle and carries Code (readers that predate code bundles
// see no model in it and skip it). A nil state: the entry is gone.
type Event struct {
	Kind    Kind      `json:"kind,omitempty"` // empty: a model
	Type    EventType `json:"type"`
	Model   string    `json:"model,omitempty"`
	Bundle  string    `json:"bundle,omitempty"`
	Version string    `json:"version,omitempty"`
	Alias   string    `json:"alias,omitempty"`
	At      time.Time `json:"at"`
	State   *Model    `json:"state,omitempty"`
	Code    *Bundle   `json:"code,omitempty"`
}

// EventType names a change.
type EventType string

// The changes.
const (
	VersionPublished EventType = "version_published"
	VersionDeleted   EventType = "version_deleted"
	AliasSet         EventType = "alias_set"
)

func kindOf[V versionOf]() Kind {
	var zero V
	return zero.kind()
}

// Lookup finds a version by number or "@alias"; "" is the highest.
func (m *Set[V]) Lookup(version string) (*V, error) {
	noun := kindOf[V]().noun()
	if alias, ok := strings.CutPrefix(version, "@"); ok {
		v, ok := m.Aliases[alias]
		if !ok {
			return nil, streams.Errorf(streams.CodeNotFound, "%s %s has no alias %q", noun, m.Name, alias)
		}
		version = v
	}
	if version == "" {
		if len(m.Versions) == 0 {
			return nil, streams.Errorf(streams.CodeNotFound, "%s %s has no versions", noun, m.Name)
		}
		return &m.Versions[len(m.Versions)-1], nil
	}
	for i := range m.Versions {
		if m.Versions[i].number() == version {
			return &m.Versions[i], nil
		}
	}
	return nil, streams.Errorf(streams.CodeNotFound, "%s %s has no version %q", noun, m.Name, version)
}

// AliasesOf lists the aliases pointing at version, sorted.
func (m *Set[V]) AliasesOf(version string) []string {
	var out []string
	for a, v := range m.Aliases {
		if v == version {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// nextVersion is one more than the highest numeric version (taken included).
func nextVersion[V versionOf](m *Set[V], taken map[string]bool) string {
	top := 0
	consider := func(v string) {
		if n, err := strconv.Atoi(v); err == nil && n > top {
			top = n
		}
	}
	if m != nil {
		for _, v := range m.Versions {
			consider(v.number())
		}
	}
	for v := range taken {
		consider(v)
	}
	return strconv.Itoa(top + 1)
}

func (m *Set[V]) clone() *Set[V] {
	c := &Set[V]{Name: m.Name, Versions: slices.Clone(m.Versions), Aliases: make(map[string]string, len(m.Aliases))}
	for k, v := range m.Aliases {
		c.Aliases[k] = v
	}
	return c
}

func (m *Set[V]) insert(v V) {
	m.Versions = append(m.Versions, v)
	slices.SortFunc(m.Versions, func(a, b V) int { return compareVersions(a.number(), b.number()) })
}

// compareVersions orders numeric versions numerically, before others.
func compareVersions(a, b string) int {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	switch {
	case errA == nil && errB == nil:
		return cmp.Compare(x, y)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// Limits on names.
const (
	maxModelName = 128
	maxVersion   = 64
	maxPath      = 1024
)

// ValidName checks a model name: 1..128 of letters, digits, '.', '_', '-',
// starting with a letter or digit, no "..".
func ValidName(what, s string, max int) error {
	switch {
	case s == "" || len(s) > max:
		return streams.Errorf(streams.CodeInvalidArgument, "%s %q: length %d is not in 1..%d", what, s, len(s), max)
	case strings.Contains(s, ".."):
		return streams.Errorf(streams.CodeInvalidArgument, "%s %q: \"..\" is not allowed", what, s)
	}
	for i, r := range s {
		ok := r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && strings.ContainsRune("._-", r)))
		if !ok {
			return streams.Errorf(streams.CodeInvalidArgument, "%s %q: character %q at %d is not allowed (letters, digits, '.', '_', '-'; a letter or digit first)", what, s, r, i)
		}
	}
	return nil
}

// CheckNames validates a model name, and a version and an alias when not
// empty, as a publish would.
func CheckNames(model, version, alias string) error {
	if err := validModel(model); err != nil {
		return err
	}
	if version != "" {
		if err := validVersion(version); err != nil {
			return err
		}
	}
	if alias != "" {
		return validAlias(alias)
	}
	return nil
}

func validModel(s string) error   { return ValidName("model name", s, maxModelName) }
func validVersion(s string) error { return ValidName("version", s, maxVersion) }

func validAlias(s string) error {
	if err := ValidName("alias", s, maxModelName); err != nil {
		return err
	}
	if _, err := strconv.Atoi(s); err == nil {
		return streams.Errorf(streams.CodeInvalidArgument, "alias %q: a number would read as a version", s)
	}
	return nil
}

// validPath checks an artifact file path: relative, '/'-separated, no
// empty, "." or ".." segments, no control characters.
func validPath(p string) error {
	if p == "" || len(p) > maxPath || strings.HasPrefix(p, "/") {
		return streams.Errorf(streams.CodeInvalidArgument, "file path %q must be relative and 1..%d bytes", p, maxPath)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return streams.Errorf(streams.CodeInvalidArgument, "file path %q: empty, \".\" or \"..\" segment", p)
		}
	}
	for i, r := range p {
		if unicode.IsControl(r) || r == '\\' {
			return streams.Errorf(streams.CodeInvalidArgument, "file path %q: character %q at %d is not allowed", p, r, i)
		}
	}
	return nil
}

// validUpload checks everything about an upload that needs no state.
func validUpload(u *Upload) error {
	if err := CheckNames(u.Model, u.Version, u.Alias); err != nil {
		return err
	}
	if len(u.Files) == 0 {
		return streams.Errorf(streams.CodeInvalidArgument, "version of %s has no files", u.Model)
	}
	if err := validFiles(u.Files); err != nil {
		return err
	}
	for _, t := range append(slices.Clone(u.Inputs), u.Outputs...) {
		if t.Name == "" || !slices.Contains(spec.Datatypes, t.Datatype) {
			return streams.Errorf(streams.CodeInvalidArgument, "signature tensor %q: needs a name and a datatype (one of %s)", t.Name, strings.Join(spec.Datatypes, ", "))
		}
	}
	return nil
}

// validFiles checks a manifest's paths, sizes and checksums.
func validFiles(files []File) error {
	seen := map[string]bool{}
	for _, f := range files {
		if err := validPath(f.Path); err != nil {
			return err
		}
		if seen[f.Path] {
			return streams.Errorf(streams.CodeInvalidArgument, "file %q is listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 {
			return streams.Errorf(streams.CodeInvalidArgument, "file %q: negative size %d", f.Path, f.Size)
		}
		if f.SHA256 != "" && !isHex64(f.SHA256) {
			return streams.Errorf(streams.CodeInvalidArgument, "file %q: sha256 %q is not 64 hex digits", f.Path, f.SHA256)
		}
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// ObjectKey is the store key of one file of a model version's artifact.
func ObjectKey(model, version, path string) string { return objectKey(KindModel, model, version, path) }

// BundleObjectKey is the store key of one file of a code bundle version.
func BundleObjectKey(bundle, version, path string) string {
	return objectKey(KindCode, bundle, version, path)
}

// storePrefix keeps each kind's objects apart: models/ and code/.
func storePrefix(k Kind) string {
	if k == KindCode {
		return "code"
	}
	return "models"
}

func objectKey(k Kind, name, version, path string) string {
	return fmt.Sprintf("%s/%s/%s/files/%s", storePrefix(k), name, version, path)
}

func manifestKey(k Kind, name, version string) string {
	return fmt.Sprintf("%s/%s/%s/MANIFEST.json", storePrefix(k), name, version)
}

// Labels returns every version's labels, oldest first (none for a code
// bundle).
func (m *Set[V]) Labels() []map[string]string {
	out := make([]map[string]string, len(m.Versions))
	for i := range m.Versions {
		out[i] = m.Versions[i].labels()
	}
	return out
}
