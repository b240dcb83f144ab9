// Package code resolves and checks the code an application's deployments
// run: the handlers built into the platform's own binary, a code bundle
// from the registry (NAME, NAME@VERSION, NAME@ALIAS), or in `sluice dev` a
// local binary. A deploy pins each reference to a version and the SHA-256
// of its binary (spec.BundlePin), so every process agrees on what runs and
// a new version is a new revision; every process that reads a spec checks
// it against the manifests of the code it names, never by linking it.
package code

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
)

// Catalog resolves registry bundles: the registry, or a follower of it.
type Catalog interface {
	ResolveBundle(ref string) (*registry.BundleVersion, error)
}

// Resolver pins and checks applications' code.
type Resolver struct {
	// Builtin is the manifest of the running binary: the handlers of
	// deployments that name no code.
	Builtin bundle.Manifest
	// Catalog resolves registry bundles; nil: none can be named.
	Catalog Catalog
	// LocalPaths allows `code: ./path` (sluice dev only).
	LocalPaths bool
	// DescribeTimeout bounds `BINARY describe --json` of a local binary;
	// default 10s.
	DescribeTimeout time.Duration

	mu    sync.Mutex
	local map[string]bundle.Manifest // by SHA-256 of a local binary
}

// syncer is a Catalog that can catch up with the registry's events.
type syncer interface{ Sync(context.Context) error }

// catchUp bounds how long a check waits for the registry's events.
const catchUp = 5 * time.Second

// validPin reports whether p is a pin the platform could have made: an
// image reference, or a binary's SHA-256 (64 hex digits) with a path or a
// registry name and version.
func validPin(p *spec.BundlePin) bool {
	if p.Image != "" {
		return p.Name != "" && p.Version != ""
	}
	if len(p.SHA256) != 64 || strings.Trim(p.SHA256, "0123456789abcdef") != "" {
		return false
	}
	return p.Path != "" || p.Name != "" && p.Version != ""
}

// ErrUnpinned is wrapped when a spec names code that was not pinned at
// deploy (a spec written to the apps topic by hand).
var ErrUnpinned = errors.New("code not pinned")

// Pin resolves every deployment's code reference of app and records the
// version it runs (Deployment.Bundle), replacing an older pin, and marks
// the deployments whose handler is an HTTP ingress (Deployment.HTTP), as
// the manifest of that code says, for the gateway's routes.
func (r *Resolver) Pin(ctx context.Context, app *spec.App) error {
	var errs []error
	for i := range app.Deployments {
		d := &app.Deployments[i]
		d.Bundle, d.HTTP = nil, false
		ref := app.CodeOf(*d)
		if d.Kind != "" {
			continue
		}
		if ref.IsZero() {
			d.HTTP = servesHTTP(r.Builtin, d.Handler)
			continue
		}
		pin, err := r.pin(ctx, ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", app.Locate(fmt.Sprintf("deployments[%d]", i)), err))
			continue
		}
		d.Bundle = pin
		m, err := r.manifest(pin) // an image's is the registry's, as Check reads it
		if err == nil {
			// Refused at deploy only: a spec deployed before stays readable.
			// Code below claim checks would hand a claimed value's
			// handler an empty value.
			if perr := m.CheckProtocol(bundle.ProtocolClaims); perr != nil {
				err = fmt.Errorf("code %s: bundle %s %w", ref, pinKey(pin), perr)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", app.Locate(fmt.Sprintf("deployments[%d]", i)), err))
			continue
		}
		d.HTTP = servesHTTP(m, d.Handler)
	}
	return errors.Join(errs...)
}

// servesHTTP reports whether m's handler name is an HTTP ingress.
func servesHTTP(m bundle.Manifest, name string) bool {
	h := m.Handler(name)
	return h != nil && h.ServesHTTP()
}

func (r *Resolver) pin(ctx context.Context, ref spec.CodeRef) (*spec.BundlePin, error) {
	if ref.Path != "" {
		if !r.LocalPaths {
			return nil, fmt.Errorf("code %s: a local binary runs only in sluice dev; publish it (sluice code push) and name NAME@VERSION", ref.Path)
		}
		sum, _, err := r.describeLocal(ctx, ref.Path)
		if err != nil {
			return nil, err
		}
		return &spec.BundlePin{Path: ref.Path, Format: registry.FormatGoBinary, SHA256: sum}, nil
	}
	if r.Catalog == nil {
		return nil, fmt.Errorf("code %s: this process has no registry to find bundles in", ref)
	}
	v, err := r.Catalog.ResolveBundle(ref.String())
	if err != nil {
		return nil, fmt.Errorf("code %s: %w", ref, err)
	}
	switch {
	case v.Format == registry.FormatImage:
		// Pods run it: `sluice render --workloads` (Kubernetes).
		return &spec.BundlePin{Name: v.Bundle, Version: v.Version, Format: v.Format, Image: v.Image}, nil
	case v.Format == registry.FormatPythonProject:
		return &spec.BundlePin{Name: v.Bundle, Version: v.Version, Format: v.Format, SHA256: ProjectSHA256(v.Files)}, nil
	case v.Format != registry.FormatGoBinary || len(v.Files) != 1:
		return nil, fmt.Errorf("code %s: bundle %s@%s is a %s; replicas run go-binary and python-project bundles (and images, on Kubernetes)", ref, v.Bundle, v.Version, v.Format)
	}
	return &spec.BundlePin{Name: v.Bundle, Version: v.Version, Format: v.Format, SHA256: v.Files[0].SHA256}, nil
}

// Check reports every way app cannot run on the code it names: each
// deployment is checked against the manifest of its code (the running
// binary's for deployments that name none). It is the store's check: it
// runs wherever a spec is read, and needs no user code linked.
func (r *Resolver) Check(app *spec.App) error {
	groups := map[string]bundle.Manifest{}
	keyOf := make([]string, len(app.Deployments))
	var errs []error
	for i, d := range app.Deployments {
		ref := app.CodeOf(d)
		if d.Bundle != nil && (ref.IsZero() || d.Kind != "" || !validPin(d.Bundle)) {
			errs = append(errs, fmt.Errorf("%s: a bundle pin %+v that its code: does not account for", app.Locate(fmt.Sprintf("deployments[%d]", i)), *d.Bundle))
			continue
		}
		if ref.IsZero() || d.Kind != "" {
			continue
		}
		if d.Bundle == nil {
			errs = append(errs, fmt.Errorf("%s: code %s: %w: deploy the application through the platform's API (sluice deploy), which pins it to a version",
				app.Locate(fmt.Sprintf("deployments[%d]", i)), ref, ErrUnpinned))
			continue
		}
		if app.ExactlyOnce() && d.Bundle.Format == registry.FormatPythonProject {
			errs = append(errs, fmt.Errorf("%s: delivery %s: deployment %s runs the Python project %s@%s, whose replicas do not commit in transactions yet; use %s or a Go deployment",
				app.Locate("delivery"), spec.DeliveryExactlyOnce, d.Name, d.Bundle.Name, d.Bundle.Version, spec.DeliveryAtLeastOnce))
			continue
		}
		key := pinKey(d.Bundle)
		if _, ok := groups[key]; !ok {
			m, err := r.manifest(d.Bundle)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", app.Locate(fmt.Sprintf("deployments[%d]", i)), err))
				continue
			}
			groups[key] = m
		}
		keyOf[i] = key
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(groups) == 0 {
		return bundle.Check(app, r.Builtin)
	}
	if len(groups) == 1 && !usesBuiltin(app, keyOf) {
		for _, m := range groups {
			return bundle.Check(app, m)
		}
	}
	// Several codes in one graph: one manifest whose handlers are
	// qualified by their code, and each deployment names its own.
	qualified := app.Clone()
	merged := bundle.Manifest{Format: r.Builtin.Format, SDK: r.Builtin.SDK}
	add := func(key string, m bundle.Manifest) {
		for _, h := range m.Handlers {
			h.Name = key + "/" + h.Name
			merged.Handlers = append(merged.Handlers, h)
		}
	}
	add("builtin", r.Builtin)
	for key, m := range groups {
		add(key, m)
	}
	for i := range qualified.Deployments {
		d := &qualified.Deployments[i]
		if d.Kind != "" {
			continue
		}
		key := keyOf[i]
		if key == "" {
			key = "builtin"
		}
		d.Handler = key + "/" + d.Handler
	}
	return bundle.Check(qualified, merged)
}

func usesBuiltin(app *spec.App, keyOf []string) bool {
	for i, d := range app.Deployments {
		if d.Kind == "" && keyOf[i] == "" {
			return true
		}
	}
	return false
}

func pinKey(p *spec.BundlePin) string {
	if p.Path != "" {
		return p.Path
	}
	return p.Name + "@" + p.Version
}

// manifest is the manifest of pinned code.
func (r *Resolver) manifest(p *spec.BundlePin) (bundle.Manifest, error) {
	if p.Path != "" {
		if !r.LocalPaths {
			return bundle.Manifest{}, fmt.Errorf("code %s: a local binary runs only in sluice dev", p.Path)
		}
		r.mu.Lock()
		m, ok := r.local[p.SHA256]
		r.mu.Unlock()
		if ok {
			return m, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout())
		defer cancel()
		sum, m, err := r.describeLocal(ctx, p.Path)
		if err != nil {
			return bundle.Manifest{}, err
		}
		if sum != p.SHA256 {
			return bundle.Manifest{}, fmt.Errorf("code %s changed since it was deployed (sha256 %s, deployed %s): deploy again", p.Path, short(sum), short(p.SHA256))
		}
		return m, nil
	}
	if r.Catalog == nil {
		return bundle.Manifest{}, fmt.Errorf("code %s@%s: this process has no registry to find bundles in", p.Name, p.Version)
	}
	v, err := r.Catalog.ResolveBundle(p.Name + "@" + p.Version)
	if s, ok := r.Catalog.(syncer); ok && err != nil {
		// This process's view of the registry may be behind the deploy
		// that pinned the version: catch up once, bounded, and look again.
		ctx, cancel := context.WithTimeout(context.Background(), catchUp)
		if s.Sync(ctx) == nil {
			v, err = r.Catalog.ResolveBundle(p.Name + "@" + p.Version)
		}
		cancel()
	}
	if err != nil {
		return bundle.Manifest{}, fmt.Errorf("code %s@%s: %w", p.Name, p.Version, err)
	}
	if !samePin(p, v) {
		return bundle.Manifest{}, fmt.Errorf("code %s@%s: the registry's version is not the one deployed", p.Name, p.Version)
	}
	if len(v.Manifest) == 0 {
		if p.Format == registry.FormatPythonProject {
			return bundle.Manifest{}, fmt.Errorf("code %s@%s has no manifest to check the graph against: push it with --import-path MODULE:APP (or sluice deploy --python), which describes it", p.Name, p.Version)
		}
		return bundle.Manifest{}, fmt.Errorf("code %s@%s has no manifest to check the graph against: push it with --manifest (its binary's describe --json)", p.Name, p.Version)
	}
	m, err := bundle.Decode(v.Manifest)
	if err != nil {
		return bundle.Manifest{}, fmt.Errorf("code %s@%s: %w", p.Name, p.Version, err)
	}
	return m, nil
}

// samePin reports whether the registry's version v is the one p pinned.
func samePin(p *spec.BundlePin, v *registry.BundleVersion) bool {
	switch p.Format {
	case registry.FormatImage:
		return v.Image == p.Image
	case registry.FormatPythonProject:
		return v.Format == p.Format && ProjectSHA256(v.Files) == p.SHA256
	}
	return len(v.Files) == 1 && v.Files[0].SHA256 == p.SHA256
}

func (r *Resolver) timeout() time.Duration {
	if r.DescribeTimeout > 0 {
		return r.DescribeTimeout
	}
	return 10 * time.Second
}

// describeLocal hashes a local binary and reads its manifest (`PATH
// describe --json`), cached by hash.
func (r *Resolver) describeLocal(ctx context.Context, path string) (string, bundle.Manifest, error) {
	sum, err := FileSHA256(path)
	if err != nil {
		return "", bundle.Manifest{}, fmt.Errorf("code %s: %w", path, err)
	}
	r.mu.Lock()
	m, ok := r.local[sum]
	r.mu.Unlock()
	if ok {
		return sum, m, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, path, "describe", "--json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", bundle.Manifest{}, fmt.Errorf("code %s: `%s describe --json` failed (%v): %s", path, path, err, strings.TrimSpace(stderr.String()))
	}
	if m, err = bundle.Decode(out); err != nil {
		return "", bundle.Manifest{}, fmt.Errorf("code %s: %w", path, err)
	}
	r.mu.Lock()
	if r.local == nil {
		r.local = map[string]bundle.Manifest{}
	}
	r.local[sum] = m
	r.mu.Unlock()
	return sum, m, nil
}

// FileSHA256 is the hex SHA-256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func short(s string) string { return s[:min(len(s), 12)] }
