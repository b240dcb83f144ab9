// Package python ships the Sluice Python SDK inside the sluice binary:
// its source (src/sluice) and pyproject.toml, embedded, so that a node
// prepares a python-project bundle's environment with the SDK of the
// platform that runs it, offline, without an index serving it.
package python

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

//go:embed pyproject.toml src/sluice/*.py src/sluice/py.typed src/sluice/*/*.py
var files embed.FS

// FS is the SDK's source: pyproject.toml and src/sluice.
func FS() fs.FS { return files }

var (
	versionOnce sync.Once
	version     string
)

// Version is the SDK's identity: the SHA-256 of its embedded files (paths
// and contents), 16 hex digits. An environment built with one SDK is not
// reused with another.
func Version() string {
	versionOnce.Do(func() {
		h := sha256.New()
		var paths []string
		_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				paths = append(paths, p)
			}
			return err
		})
		sort.Strings(paths)
		for _, p := range paths {
			b, _ := files.ReadFile(p)
			h.Write([]byte(p + "\x00"))
			sum := sha256.Sum256(b)
			h.Write(sum[:])
		}
		version = hex.EncodeToString(h.Sum(nil))[:16]
	})
	return version
}

var depsLine = regexp.MustCompile(`(?m)^dependencies\s*=\s*(\[.*\])\s*$`)

// Requirements are the SDK's own dependencies, as pyproject.toml lists
// them on one line (pip requirement specifiers).
func Requirements() ([]string, error) {
	b, err := files.ReadFile("pyproject.toml")
	if err != nil {
		return nil, err
	}
	m := depsLine.FindSubmatch(b)
	if m == nil {
		return nil, nil
	}
	var reqs []string
	if err := json.Unmarshal(m[1], &reqs); err != nil {
		return nil, err
	}
	return reqs, nil
}

// Extract writes the SDK's source under dir (dir/src/sluice/...,
// dir/pyproject.toml).
func Extract(dir string) error {
	return fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// ExtraRequirements are the requirements of the SDK's optional extra
// name (`sluice[name]`), as pyproject.toml lists them under
// [project.optional-dependencies] (a TOML array of strings, on one line
// or several); ok is false when it has no such extra.
func ExtraRequirements(name string) (reqs []string, ok bool, err error) {
	b, err := files.ReadFile("pyproject.toml")
	if err != nil {
		return nil, false, err
	}
	_, section, found := strings.Cut(string(b), "\n[project.optional-dependencies]\n")
	if !found {
		return nil, false, nil
	}
	if i := strings.Index(section, "\n["); i >= 0 {
		section = section[:i]
	}
	start := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\s*=\s*(\[.*)$`)
	var array string
	for _, line := range strings.Split(section, "\n") {
		if array == "" {
			if m := start.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				array = m[1]
			}
		} else if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			array += t
		}
		if array != "" && json.Unmarshal([]byte(trailingComma.ReplaceAllString(array, "]")), &reqs) == nil {
			return reqs, true, nil
		}
	}
	if array != "" {
		return nil, false, fmt.Errorf("pyproject.toml: optional dependencies %s: not an array of strings", name)
	}
	return nil, false, nil
}

var trailingComma = regexp.MustCompile(`,\s*\]$`)
