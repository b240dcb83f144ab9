// Package registry keeps model versions: their artifacts in object storage
// (MinIO, or a local directory in `sluice dev`), their metadata and aliases
// as events on a compacted Kafka topic. The topic is the system of record:
// every event carries the model's whole state after the change, so
// compaction by model keeps everything, and any process (the registry
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

// Model is a model with its versions and aliases.
type Model struct {
	Name     string            `json:"name"`
	Versions []Version         `json:"versions"` // ascending
	Aliases  map[string]string `json:"aliases,omitempty"`
}

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

// File is one file of a version's artifact.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Event is one change, with the model's state after it (nil State: the
// model is gone).
type Event struct {
	Type    EventType `json:"type"`
	Model   string    `json:"model"`
	Version string    `json:"version,omitempty"`
	Alias   string    `json:"alias,omitempty"`
	At      time.Time `json:"at"`
	State   *Model    `json:"state,omitempty"`
}

// EventType names a change.
type EventType string

// The changes.
const (
	VersionPublished EventType = "version_published"
	VersionDeleted   EventType = "version_deleted"
	AliasSet         EventType = "alias_set"
)

// Lookup finds a version by number or "@alias".
func (m *Model) Lookup(version string) (*Version, error) {
	if alias, ok := strings.CutPrefix(version, "@"); ok {
		v, ok := m.Aliases[alias]
		if !ok {
			return nil, streams.Errorf(streams.CodeNotFound, "model %s has no alias %q", m.Name, alias)
		}
		version = v
	}
	if version == "" {
		if len(m.Versions) == 0 {
			return nil, streams.Errorf(streams.CodeNotFound, "model %s has no versions", m.Name)
		}
		return &m.Versions[len(m.Versions)-1], nil
	}
	for i := range m.Versions {
		if m.Versions[i].Version == version {
			return &m.Versions[i], nil
		}
	}
	return nil, streams.Errorf(streams.CodeNotFound, "model %s has no version %q", m.Name, version)
}

// AliasesOf lists the aliases pointing at version, sorted.
func (m *Model) AliasesOf(version string) []string {
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
func nextVersion(m *Model, taken map[string]bool) string {
	top := 0
	consider := func(v string) {
		if n, err := strconv.Atoi(v); err == nil && n > top {
			top = n
		}
	}
	if m != nil {
		for _, v := range m.Versions {
			consider(v.Version)
		}
	}
	for v := range taken {
		consider(v)
	}
	return strconv.Itoa(top + 1)
}

func (m *Model) clone() *Model {
	c := &Model{Name: m.Name, Versions: slices.Clone(m.Versions), Aliases: make(map[string]string, len(m.Aliases))}
	for k, v := range m.Aliases {
		c.Aliases[k] = v
	}
	return c
}

func (m *Model) insert(v Version) {
	m.Versions = append(m.Versions, v)
	slices.SortFunc(m.Versions, func(a, b Version) int { return compareVersions(a.Version, b.Version) })
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
	if err := validModel(u.Model); err != nil {
		return err
	}
	if u.Version != "" {
		if err := validVersion(u.Version); err != nil {
			return err
		}
	}
	if u.Alias != "" {
		if err := validAlias(u.Alias); err != nil {
			return err
		}
	}
	if len(u.Files) == 0 {
		return streams.Errorf(streams.CodeInvalidArgument, "version of %s has no files", u.Model)
	}
	seen := map[string]bool{}
	for _, f := range u.Files {
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
	for _, t := range append(slices.Clone(u.Inputs), u.Outputs...) {
		if t.Name == "" || !slices.Contains(spec.Datatypes, t.Datatype) {
			return streams.Errorf(streams.CodeInvalidArgument, "signature tensor %q: needs a name and a datatype (one of %s)", t.Name, strings.Join(spec.Datatypes, ", "))
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

// objectKey is where a file of a version lives in the store.
// ObjectKey is the store key of one file of a version's artifact.
func ObjectKey(model, version, path string) string {
	return fmt.Sprintf("models/%s/%s/files/%s", model, version, path)
}

func manifestKey(model, version string) string {
	return fmt.Sprintf("models/%s/%s/MANIFEST.json", model, version)
}

// Labels returns every version's labels, oldest first.
func (m *Model) Labels() []map[string]string {
	out := make([]map[string]string, len(m.Versions))
	for i := range m.Versions {
		out[i] = m.Versions[i].Labels
	}
	return out
}
