package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// `sluice models fetch` is how code that is not Go reaches the registry
// from a replica: the Python SDK runs it (sluice.serve.models) with what
// the replica was started with (execPython passes it in the
// environment). It follows the registry's events from the brokers, as a
// Go model replica does, and reads the files from the store the replica
// reads weights from, so it needs no platform address. Its answer is one
// JSON object on stdout, the version fetched or the error with its code.

// fetched is what `sluice models fetch` prints.
type fetched struct {
	Model   string `json:"model,omitempty"`
	Version string `json:"version,omitempty"`
	Format  string `json:"format,omitempty"`
	Dir     string `json:"dir,omitempty"`
	// With --versions: the model's versions (ascending) and aliases.
	Versions []listedVersion   `json:"versions,omitempty"`
	Aliases  map[string]string `json:"aliases,omitempty"`
	Code     string            `json:"code,omitempty"` // on failure: the protocol's error code
	Error    string            `json:"error,omitempty"`
}

// listedVersion is one version --versions lists.
type listedVersion struct {
	Version string `json:"version"`
	Format  string `json:"format,omitempty"`
}

// completeMark marks a version's cache directory whose every file arrived
// with its size and SHA-256.
const completeMark = ".complete"

func modelsFetch(ctx context.Context, args []string, env Env) error {
	fs := newFlags("models fetch", env)
	cluster := clusterFlags(fs)
	s3 := s3Flags(fs)
	blobDir := fs.String("blob-dir", "", "where the registry keeps files, when it is a local directory (sluice dev) rather than S3")
	cache := fs.String("cache", "", "directory versions are fetched into, one directory per version, kept (required)")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on following the registry and downloading")
	list := fs.Bool("versions", false, "list the model's versions and aliases instead (NAME only; nothing is downloaded)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cache == "" && !*list {
		return usageError("models fetch: --cache is required")
	}
	bs, namer, err := cluster()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var out fetched
	if *list {
		out, err = listModel(ctx, fs.args[0], bs, namer, env)
	} else {
		out, err = fetchModel(ctx, fs.args[0], bs, namer, withS3Env(*s3, env), *blobDir, *cache, env)
	}
	if err != nil {
		out = fetched{Code: string(streams.CodeOf(err)), Error: err.Error()}
	}
	b, _ := json.Marshal(out)
	fmt.Fprintln(env.Stdout, string(b))
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	return nil
}

// listModel is the versions and aliases of the model name.
func listModel(ctx context.Context, name string, brokers []string, namer streams.Namer, env Env) (fetched, error) {
	if err := registry.CheckNames(name, "", ""); err != nil {
		return fetched{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	reg, err := followRegistry(ctx, runCtx, registry.Config{Brokers: brokers, Namer: namer, Log: env.Log})
	if err != nil {
		return fetched{}, err
	}
	m, err := reg.Model(name)
	if err != nil {
		return fetched{}, err
	}
	out := fetched{Model: m.Name, Versions: []listedVersion{}, Aliases: m.Aliases}
	for _, v := range m.Versions {
		out.Versions = append(out.Versions, listedVersion{Version: v.Version, Format: v.Format})
	}
	return out, nil
}

// fetchModel resolves ref (NAME, NAME@NUMBER or NAME@ALIAS) and makes its
// files present under cache, downloading them unless a complete copy is
// there.
func fetchModel(ctx context.Context, ref string, brokers []string, namer streams.Namer, s3 blob.S3Config, blobDir, cache string, env Env) (fetched, error) {
	name, x, hasX := strings.Cut(ref, "@")
	if err := registry.CheckNames(name, "", ""); err != nil {
		return fetched{}, err
	}
	version := x
	if hasX && strings.Trim(x, "0123456789") != "" {
		version = "@" + x // not a number: an alias
	}
	var store registry.Store
	switch {
	case s3.Endpoint != "":
		st, err := blob.NewS3(ctx, s3, env.Log)
		if err != nil {
			return fetched{}, err
		}
		store = st
	case blobDir != "":
		st, err := blob.NewDir(blobDir)
		if err != nil {
			return fetched{}, err
		}
		store = st
	default:
		return fetched{}, streams.Errorf(streams.CodeFailedPrecondition, "no store to read model files from: give --s3-endpoint or --blob-dir")
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	reg, err := followRegistry(ctx, runCtx, registry.Config{Brokers: brokers, Namer: namer, Store: store, Log: env.Log})
	if err != nil {
		return fetched{}, err
	}
	v, err := reg.Version(name, version)
	if err != nil {
		return fetched{}, err
	}
	out := fetched{Model: v.Model, Version: v.Version, Format: v.Format, Dir: filepath.Join(cache, v.Model, v.Version)}
	if _, err := os.Stat(filepath.Join(out.Dir, completeMark)); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out.Dir), 0o755); err != nil {
		return fetched{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out.Dir), "."+v.Version+"-")
	if err != nil {
		return fetched{}, err
	}
	defer os.RemoveAll(tmp)
	for _, f := range v.Files {
		if err := fetchFile(ctx, reg, v, f, filepath.Join(tmp, filepath.FromSlash(f.Path))); err != nil {
			return fetched{}, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMark), nil, 0o644); err != nil {
		return fetched{}, err
	}
	if err := os.Rename(tmp, out.Dir); err != nil {
		if _, serr := os.Stat(filepath.Join(out.Dir, completeMark)); serr == nil {
			return out, nil // another fetch of the same version finished first
		}
		return fetched{}, err
	}
	return out, nil
}

// fetchFile writes one file of v to dst, checking its size and SHA-256
// against the registry's manifest.
func fetchFile(ctx context.Context, reg *registry.Registry, v *registry.Version, f registry.File, dst string) error {
	if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
		return fmt.Errorf("model %s version %s: file path %q leaves the version's directory", v.Model, v.Version, f.Path)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rc, err := reg.Open(ctx, v, f)
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := os.Create(dst)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), rc)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("model %s version %s: file %s: %w", v.Model, v.Version, f.Path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || (f.SHA256 != "" && sum != f.SHA256) {
		return fmt.Errorf("model %s version %s: file %s arrived with %d bytes and SHA-256 %s, the registry says %d and %s",
			v.Model, v.Version, f.Path, n, sum, f.Size, f.SHA256)
	}
	return nil
}
