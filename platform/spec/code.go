package spec

import (
	"strings"
)

// CodeRef is a parsed `code:` reference: the bundle a deployment runs.
type CodeRef struct {
	// Path is a local binary (`./bin/app`, `/opt/app`): `sluice dev` runs
	// it without publishing it. Empty for a registry bundle.
	Path string
	// Name and Version name a registry bundle; Version is a number, an
	// alias, or "" for the highest version.
	Name, Version string
}

// IsZero reports whether there is no reference: the handlers built into
// the platform's own binary.
func (r CodeRef) IsZero() bool { return r == CodeRef{} }

func (r CodeRef) String() string {
	switch {
	case r.Path != "":
		return r.Path
	case r.Version != "":
		return r.Name + "@" + r.Version
	}
	return r.Name
}

// ParseCode parses a `code:` value: NAME, NAME@VERSION, NAME@ALIAS, or a
// path starting with ./, ../ or /.
func ParseCode(s string) (CodeRef, string) {
	if s == "" {
		return CodeRef{}, ""
	}
	if strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") || strings.HasPrefix(s, "/") {
		return CodeRef{Path: s}, ""
	}
	name, version, _ := strings.Cut(s, "@")
	if msg := nameProblem(name); msg != "" {
		return CodeRef{}, "bundle name " + msg + " (want NAME, NAME@VERSION, NAME@ALIAS or a path starting with ./ or /)"
	}
	if strings.Contains(s, "@") && !validRef(version) {
		return CodeRef{}, "version or alias " + quote(version) + " must be letters, digits, '.', '_' or '-' (want NAME@VERSION or NAME@ALIAS)"
	}
	return CodeRef{Name: name, Version: version}, ""
}

func validRef(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func quote(s string) string { return `"` + s + `"` }

// CodeOf is the bundle deployment d runs: its own `code:`, else the
// application's.
func (a *App) CodeOf(d Deployment) CodeRef {
	ref, _ := ParseCode(d.Code)
	if ref.IsZero() {
		ref, _ = ParseCode(a.Code)
	}
	return ref
}

// code checks a `code:` value at path.
func (v *validator) code(path, s string) {
	if _, msg := ParseCode(s); msg != "" {
		v.add(path, "%s", msg)
	}
}
