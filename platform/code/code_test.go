package code

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
)

// catalog is an in-memory registry of bundle versions by ref.
type catalog map[string]*registry.BundleVersion

func (c catalog) ResolveBundle(ref string) (*registry.BundleVersion, error) {
	if v, ok := c[ref]; ok {
		return v, nil
	}
	return nil, errors.New("no such bundle version " + ref)
}

// manifestOf is the manifest of a binary offering string handlers.
func manifestOf(t *testing.T, handlers ...string) (bundle.Manifest, json.RawMessage) {
	t.Helper()
	var deps []*serve.Deployment
	for _, h := range handlers {
		deps = append(deps, serve.Func(h, func(_ context.Context, s string) (string, error) { return s, nil }))
	}
	reg, err := serve.NewRegistry(nil, deps...)
	if err != nil {
		t.Fatal(err)
	}
	m := reg.Manifest()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

func parse(t *testing.T, yaml string) *spec.App {
	t.Helper()
	apps, err := spec.Parse("app.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return apps[0]
}

const twoCodes = `name: a
route_prefix: /a
ingress: X
code: shop@prod
deployments:
  - name: X
    handler: Greeter
  - name: Y
    handler: Upper
    code: tools
  - name: Z
    handler: Echo
edges:
  - {from: X, to: Y}
  - {from: Y, to: Z}
`

var shaA, shaB = strings.Repeat("a", 64), strings.Repeat("b", 64)

// Pin records each deployment's version and binary; Check checks each
// deployment against its own code's manifest (the builtin one for Z),
// and refuses what was never pinned.
func TestPinAndCheck(t *testing.T) {
	t.Parallel()
	builtin, _ := manifestOf(t, "Echo")
	_, shop := manifestOf(t, "Greeter")
	_, tools := manifestOf(t, "Upper")
	r := &Resolver{Builtin: builtin, Catalog: catalog{
		"shop@prod": {Bundle: "shop", Version: "3", Format: registry.FormatGoBinary, Manifest: shop, Files: []registry.File{{Path: "bin", SHA256: shaA}}},
		"shop@3":    {Bundle: "shop", Version: "3", Format: registry.FormatGoBinary, Manifest: shop, Files: []registry.File{{Path: "bin", SHA256: shaA}}},
		"tools":     {Bundle: "tools", Version: "1", Format: registry.FormatGoBinary, Manifest: tools, Files: []registry.File{{Path: "bin", SHA256: shaB}}},
		"tools@1":   {Bundle: "tools", Version: "1", Format: registry.FormatGoBinary, Manifest: tools, Files: []registry.File{{Path: "bin", SHA256: shaB}}},
	}}
	app := parse(t, twoCodes)
	if err := r.Check(app); err == nil || !errors.Is(err, ErrUnpinned) {
		t.Fatalf("an unpinned spec: %v, want ErrUnpinned", err)
	}
	if err := r.Pin(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	if p := app.Deployments[0].Bundle; p == nil || p.Name != "shop" || p.Version != "3" || p.SHA256 != shaA {
		t.Fatalf("X pinned to %+v", p)
	}
	if p := app.Deployments[1].Bundle; p == nil || p.Name != "tools" || p.Version != "1" {
		t.Fatalf("Y pinned to %+v", p)
	}
	if app.Deployments[2].Bundle == nil {
		t.Fatal("Z names the application's code too (shop): it must be pinned")
	}
	// Z's handler Echo is not in shop: refused with the location.
	if err := r.Check(app); err == nil || !strings.Contains(err.Error(), "Echo") {
		t.Fatalf("Echo is not in shop: %v", err)
	}
	app = parse(t, strings.Replace(twoCodes, "    handler: Echo", "    handler: Greeter", 1))
	if err := r.Pin(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(app); err != nil {
		t.Fatalf("every handler in its code: %v", err)
	}
	// A bundle moved on since the pin (the registry's version differs).
	r.Catalog.(catalog)["tools@1"].Files[0].SHA256 = strings.Repeat("c", 64)
	if err := r.Check(app); err == nil || !strings.Contains(err.Error(), "not the one deployed") {
		t.Fatalf("a changed version: %v", err)
	}
	// A pin its code: does not account for (written to the topic by hand).
	forged := app.Clone()
	forged.Deployments[2].Code, forged.Code = "", ""
	forged.Deployments[0].Code, forged.Deployments[1].Code = "shop@3", "tools"
	if err := r.Check(forged); err == nil || !strings.Contains(err.Error(), "does not account for") {
		t.Fatalf("a forged pin: %v", err)
	}
	// A local binary outside sluice dev.
	app = parse(t, strings.Replace(twoCodes, "code: tools", "code: ./bin/tools", 1))
	if err := r.Pin(context.Background(), app); err == nil || !strings.Contains(err.Error(), "only in sluice dev") {
		t.Fatalf("a local path outside dev: %v", err)
	}
}

// The cache downloads a binary once, checks it against the pin, and
// never keeps a wrong one.
func TestCache(t *testing.T) {
	t.Parallel()
	content := []byte("#!/bin/true\n")
	sum := sha256.Sum256(content)
	pin := &spec.BundlePin{Name: "shop", Version: "1", SHA256: hex.EncodeToString(sum[:])}
	c := Cache{Dir: t.TempDir()}
	opens := 0
	open := func(body []byte) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) {
			opens++
			return io.NopCloser(strings.NewReader(string(body))), nil
		}
	}
	if _, err := c.Get(context.Background(), pin, open([]byte("tampered"))); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a wrong download: %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(c.Path(pin)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a wrong download was kept: %v", err)
	}
	for range 2 {
		p, err := c.Get(context.Background(), pin, open(content))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != string(content) {
			t.Fatalf("cached %q", b)
		}
		if st, _ := os.Stat(p); st.Mode().Perm()&0o100 == 0 {
			t.Fatalf("cached binary not executable: %v", st.Mode())
		}
	}
	if opens != 2 {
		t.Fatalf("%d downloads, want 2 (the wrong one, then one)", opens)
	}
	// A local binary is run where it is, while it is the one deployed.
	local := filepath.Join(t.TempDir(), "shop")
	if err := os.WriteFile(local, content, 0o755); err != nil {
		t.Fatal(err)
	}
	lp := &spec.BundlePin{Path: local, SHA256: pin.SHA256}
	if p, err := c.Get(context.Background(), lp, nil); err != nil || p != local {
		t.Fatalf("local: %q %v", p, err)
	}
	if err := os.WriteFile(local, []byte("rebuilt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), lp, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a rebuilt local binary not redeployed: %v", err)
	}
}

// Pin marks an HTTP ingress deployment from its code's manifest, the
// builtin one or a bundle's (a binary's or an image's, whose manifest is
// the registry's), so that the gateway's route knows; a mark written by
// hand on another handler is cleared.
func TestPinMarksHTTPIngress(t *testing.T) {
	t.Parallel()
	web := serve.HTTP("Web", func(*serve.Handle[string, string]) http.Handler { return http.NotFoundHandler() })
	reg, err := serve.NewRegistry(nil, web, serve.Func("Echo", func(_ context.Context, s string) (string, error) { return s, nil }))
	if err != nil {
		t.Fatal(err)
	}
	m := reg.Manifest()
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Builtin: m, Catalog: catalog{
		"site":   {Bundle: "site", Version: "1", Format: registry.FormatGoBinary, Manifest: raw, Files: []registry.File{{Path: "bin", SHA256: shaA}}},
		"site@1": {Bundle: "site", Version: "1", Format: registry.FormatGoBinary, Manifest: raw, Files: []registry.File{{Path: "bin", SHA256: shaA}}},
		"pod":    {Bundle: "pod", Version: "2", Format: registry.FormatImage, Manifest: raw, Image: "registry.example/pod:2"},
		"pod@2":  {Bundle: "pod", Version: "2", Format: registry.FormatImage, Manifest: raw, Image: "registry.example/pod:2"},
	}}
	for _, code := range []string{"", "code: site\n", "code: pod\n"} {
		app := parse(t, "name: a\nroute_prefix: /a\ningress: W\n"+code+"deployments:\n  - {name: W, handler: Web, args: [{handle: E}]}\n  - {name: E, handler: Echo}\n")
		app.Deployments[1].HTTP = true
		if err := r.Pin(context.Background(), app); err != nil {
			t.Fatal(err)
		}
		if !app.Deployments[0].HTTP || app.Deployments[1].HTTP {
			t.Fatalf("code %q: marks %v %v, want the HTTP ingress only", code, app.Deployments[0].HTTP, app.Deployments[1].HTTP)
		}
		if err := r.Check(app); err != nil {
			t.Fatalf("code %q: %v", code, err)
		}
	}
}

// A bundle whose SDK predates claim checks (its manifest has no protocol
// level) is refused at deploy, naming the bundle and to rebuild it; a
// spec pinned to it before stays readable (Check).
func TestPinRefusesOldProtocol(t *testing.T) {
	t.Parallel()
	builtin, _ := manifestOf(t, "Echo")
	m, _ := manifestOf(t, "Greeter")
	m.Protocol = 0
	old, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Builtin: builtin, Catalog: catalog{
		"shop":   {Bundle: "shop", Version: "2", Format: registry.FormatGoBinary, Manifest: old, Files: []registry.File{{Path: "bin", SHA256: shaA}}},
		"shop@2": {Bundle: "shop", Version: "2", Format: registry.FormatGoBinary, Manifest: old, Files: []registry.File{{Path: "bin", SHA256: shaA}}},
		"pod":    {Bundle: "pod", Version: "1", Format: registry.FormatImage, Manifest: old, Image: "example.com/pod:1"},
		"pod@1":  {Bundle: "pod", Version: "1", Format: registry.FormatImage, Manifest: old, Image: "example.com/pod:1"},
	}}
	for _, code := range []string{"shop", "pod"} {
		app := parse(t, "name: a\nroute_prefix: /a\ningress: G\ncode: "+code+"\ndeployments:\n  - {name: G, handler: Greeter}\n")
		err := r.Pin(context.Background(), app)
		if !errors.Is(err, bundle.ErrProtocol) || !strings.Contains(err.Error(), "bundle "+code+"@") || !strings.Contains(err.Error(), "rebuild it with the current SDK") {
			t.Fatalf("code %s: Pin = %v, want ErrProtocol naming the bundle and to rebuild", code, err)
		}
		if err := r.Check(app); err != nil {
			t.Errorf("code %s: Check of a spec pinned before = %v", code, err)
		}
	}
}

// A python-project bundle is pinned by the digest of its files, checked
// against the manifest its describe recorded; one at protocol level 0
// (an SDK that did not read claims) is refused.
func TestPinPythonProject(t *testing.T) {
	t.Parallel()
	builtin, _ := manifestOf(t, "Echo")
	m, _ := manifestOf(t, "Greeter")
	m.Protocol, m.SDK = bundle.ProtocolClaims, bundle.SDK{Language: bundle.LanguagePython, Version: "0.1.0", Runtime: "python3.11", Platform: "linux/x86_64", Entry: "greet:app"}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	files := []registry.File{{Path: "greet.py", SHA256: shaA}, {Path: "requirements.txt", SHA256: shaA}}
	v := &registry.BundleVersion{Bundle: "py", Version: "3", Format: registry.FormatPythonProject, Manifest: raw, Files: files}
	cat := catalog{"py@3": v}
	const yaml = "name: a\nroute_prefix: /a\ningress: G\ncode: py@3\ndeployments:\n  - {name: G, handler: Greeter}\n"
	old := m
	old.Protocol = 0
	oldRaw, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	cat["py@2"] = &registry.BundleVersion{Bundle: "py", Version: "2", Format: registry.FormatPythonProject, Manifest: oldRaw, Files: files}
	r := &Resolver{Builtin: builtin, Catalog: cat}
	if err := r.Pin(context.Background(), parse(t, strings.ReplaceAll(yaml, "py@3", "py@2"))); !errors.Is(err, bundle.ErrProtocol) {
		t.Fatalf("Pin of a level-0 Python bundle = %v, want ErrProtocol", err)
	}
	app := parse(t, yaml)
	if err := r.Pin(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	pin := app.Deployments[0].Bundle
	if pin.Format != registry.FormatPythonProject || pin.SHA256 != ProjectSHA256(files) || pin.Name != "py" || pin.Version != "3" {
		t.Fatalf("pin = %+v", pin)
	}
	if err := r.Check(app); err != nil {
		t.Fatal(err)
	}
	// Python replicas do not commit in transactions: exactly-once is refused.
	eos := parse(t, "delivery: exactly_once\n"+yaml)
	if err := r.Pin(context.Background(), eos); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(eos); err == nil || !strings.Contains(err.Error(), ":1:11: delivery: delivery exactly_once: deployment G runs the Python project py@3") {
		t.Fatalf("Pin of an exactly-once application on a Python project = %v", err)
	}
	// Its files changed under the same version: not the one deployed.
	cat["py@3"] = &registry.BundleVersion{Bundle: "py", Version: "3", Format: registry.FormatPythonProject, Manifest: raw, Files: files[:1]}
	if err := r.Check(app); err == nil || !strings.Contains(err.Error(), "not the one deployed") {
		t.Fatalf("Check against other files = %v", err)
	}
	if a, b := ProjectSHA256(files), ProjectSHA256([]registry.File{files[1], files[0]}); a != b || len(a) != 64 {
		t.Fatalf("ProjectSHA256 depends on order: %s %s", a, b)
	}
}

// A project that names the SDK in its requirements (`sluice[ingress]`, as
// for a pip-installed SDK) gets the embedded SDK and its extra's
// requirements; the line itself never reaches pip.
func TestSDKRequirements(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("requirements.txt", "numpy==2.1\n-r more.txt\n")
	if f, extra, err := sdkRequirements(plain); err != nil || f != plain || extra != nil {
		t.Fatalf("without the SDK: %s %v %v, want the file as it is", f, extra, err)
	}
	named := write("requirements-web.txt", "numpy==2.1\nSluice[ingress] >= 0.1 ; python_version >= '3.10'\r\n-r more.txt\n")
	f, extra, err := sdkRequirements(named)
	if err != nil || f == named || len(extra) != 1 || !strings.HasPrefix(extra[0], "fastapi") {
		t.Fatalf("sluice[ingress]: %s %v %v", f, extra, err)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(strings.ToLower(l), "sluice") && !strings.HasPrefix(l, "#") {
			t.Fatalf("the SDK's line reaches pip: %q", l)
		}
	}
	if !strings.Contains(string(b), "numpy==2.1\n") || !strings.Contains(string(b), "-r more.txt") || filepath.Dir(f) != dir {
		t.Fatalf("the copy beside the file lost the rest:\n%s", b)
	}
	bad := write("requirements-bad.txt", "sluice[ingress,gpu]\n")
	if _, _, err := sdkRequirements(bad); err == nil || !strings.Contains(err.Error(), "requirements-bad.txt:1") || !strings.Contains(err.Error(), `no extra "gpu"`) {
		t.Fatalf("an unknown extra: %v", err)
	}
	// Names that only start like the SDK's are other packages.
	other := write("requirements-other.txt", "sluice-tools==1\nsluiceway\n")
	if f, extra, err := sdkRequirements(other); err != nil || f != other || extra != nil {
		t.Fatalf("other packages: %s %v %v", f, extra, err)
	}
}
