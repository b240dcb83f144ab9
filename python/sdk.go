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
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
