package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/sluice-serve/sluice/platform/code"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// bundleEnv marks a replica process that is already its deployment's
// bundle (the SHA-256 it runs), so that it does not fetch and exec again.
const bundleEnv = "SLUICE_BUNDLE"

// localCodeEnv marks a replica process that sluice dev started: only such
// a process runs a local binary (`code: ./path`).
const localCodeEnv = "SLUICE_LOCAL_CODE"

// bundleSource is where a replica process finds a bundle's binary: the
// registry's files in S3 or a local directory, cached by content.
type bundleSource struct {
	brokers []string
	namer   streams.Namer
	s3      blob.S3Config
	blobDir string
	cache   string
}

func deploymentOf(a *spec.App, name string) (spec.Deployment, bool) {
	i := slices.IndexFunc(a.Deployments, func(d spec.Deployment) bool { return d.Name == name })
	if i < 0 {
		return spec.Deployment{}, false
	}
	return a.Deployments[i], true
}

// execBundle fetches the pinned bundle into the content-addressed cache
// (if not there yet) and replaces this process with it, running the same
// replica command: the bundle links the SDK, so it has every command. The
// process keeps its pid, its environment and its descriptors, among them
// the readiness pipe of the node that started it.
func execBundle(ctx context.Context, pin *spec.BundlePin, args []string, src bundleSource, env Env) error {
	dir := src.cache
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("replica: no user cache directory for code bundles (%v): pass --code-cache", err)
		}
		dir = filepath.Join(base, "sluice", "code")
	}
	start := time.Now()
	bin, err := code.Cache{Dir: dir}.Get(ctx, pin, func(ctx context.Context) (io.ReadCloser, error) { return src.open(ctx, pin, env) })
	if err != nil {
		return err
	}
	env.Log.Info("running code bundle", "bundle", pin.Name, "version", pin.Version, "path", pin.Path, "binary", bin, "fetched_in", time.Since(start).Round(time.Millisecond))
	argv := append([]string{bin, "replica"}, args...)
	return syscall.Exec(bin, argv, append(append(os.Environ(), kafkaEnv(src.brokers)...), bundleEnv+"="+pin.SHA256))
}

// open streams the pinned bundle's binary from the registry's store.
func (src bundleSource) open(ctx context.Context, pin *spec.BundlePin, env Env) (io.ReadCloser, error) {
	v, cancel, err := src.resolve(ctx, pin, env)
	if err != nil {
		return nil, err
	}
	if len(v.Files) != 1 {
		cancel()
		return nil, fmt.Errorf("bundle %s@%s has %d files, want one binary", pin.Name, pin.Version, len(v.Files))
	}
	rc, err := v.open(ctx, v.BundleVersion, v.Files[0])
	if err != nil {
		cancel()
		return nil, err
	}
	return closeBoth{rc, cancel}, nil
}

// resolvedBundle is a pinned version as the registry has it, and how to
// open its files.
type resolvedBundle struct {
	*registry.BundleVersion
	open func(context.Context, *registry.BundleVersion, registry.File) (io.ReadCloser, error)
}

// resolve follows the registry (until the returned cancel) and looks the
// pinned version up.
func (src bundleSource) resolve(ctx context.Context, pin *spec.BundlePin, env Env) (resolvedBundle, context.CancelFunc, error) {
	var store registry.Store
	var err error
	switch {
	case src.s3.Endpoint != "":
		store, err = blob.NewS3(ctx, src.s3, env.Log)
	case src.blobDir != "":
		store, err = blob.NewDir(src.blobDir)
	default:
		return resolvedBundle{}, nil, fmt.Errorf("no store to fetch it from: the replica needs --s3-endpoint (or SLUICE_S3_ENDPOINT), or --blob-dir")
	}
	if err != nil {
		return resolvedBundle{}, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	reg, err := followRegistry(ctx, runCtx, registry.Config{Brokers: src.brokers, Namer: src.namer, Store: store, Log: env.Log})
	if err != nil {
		cancel()
		return resolvedBundle{}, nil, err
	}
	v, err := reg.ResolveBundle(pin.Name + "@" + pin.Version)
	if err != nil {
		cancel()
		return resolvedBundle{}, nil, err
	}
	return resolvedBundle{BundleVersion: v, open: reg.OpenBundle}, cancel, nil
}

// download writes one file of a resolved version to dst, checking its
// SHA-256.
func (src bundleSource) download(ctx context.Context, v resolvedBundle, f registry.File, dst string) error {
	rc, err := v.open(ctx, v.BundleVersion, f)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), rc)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bundle %s@%s: %s: %w", v.Bundle, v.Version, f.Path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); f.SHA256 != "" && sum != f.SHA256 {
		return fmt.Errorf("bundle %s@%s: %s: sha256 %s, registered %s: %w", v.Bundle, v.Version, f.Path, sum[:12], f.SHA256[:min(12, len(f.SHA256))], code.ErrChecksum)
	}
	return nil
}

type closeBoth struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c closeBoth) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
