package cli

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// buildFakeSDK builds testdata/fakesdk, a stand-in for an SDK binary
// whose describe --json prints a manifest, into dir as name.
func buildFakeSDK(t *testing.T, dir, name string) string {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("go-binary bundles run describe on linux/amd64 only")
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "./testdata/fakesdk")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/fakesdk: %v\n%s", err, b)
	}
	return out
}

// craftedELF writes an ELF header with the given machine and OS ABI,
// then some bytes: no Go build information.
func craftedELF(t *testing.T, dir, name string, machine elf.Machine, osabi elf.OSABI) string {
	t.Helper()
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION], h[elf.EI_OSABI] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1, byte(osabi)
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(h[18:], uint16(machine))
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, append(h, make([]byte, 256)...), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// `code push` refuses bad input with the reason, exit code 2, before it
// sends anything; a binary that does not answer describe is stopped
// after --describe-timeout.
func TestCodePushRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fake := buildFakeSDK(t, dir, "fakesdk")
	for _, name := range []string{"hangs", "garbage", "fails"} {
		if err := os.Link(fake, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	script := writeTemp(t, "app.sh", "#!/bin/sh\necho '{}'\n")
	plain := writeTemp(t, "app.txt", "hello")
	arm := craftedELF(t, dir, "arm", elf.EM_AARCH64, elf.ELFOSABI_NONE)
	bsd := craftedELF(t, dir, "bsd", elf.EM_X86_64, elf.ELFOSABI_FREEBSD)
	notGo := craftedELF(t, dir, "c-binary", elf.EM_X86_64, elf.ELFOSABI_NONE)
	noProject := t.TempDir()
	if err := os.WriteFile(filepath.Join(noProject, "main.py"), []byte("print(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badManifest := writeTemp(t, "manifest.json", `["not", "an", "object"]`)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a script", []string{"app", script}, `not an ELF binary: a script ("#!/bin/sh")`},
		{"a plain file", []string{"app", plain}, "not an ELF binary: a plain file"},
		{"arm64", []string{"app", arm}, "an ELF binary for arm64 (ELFCLASS64, ELFDATA2LSB, EM_AARCH64), want linux/amd64"},
		{"freebsd", []string{"app", bsd}, "an x86-64 ELF binary for ELFOSABI_FREEBSD"},
		{"not Go", []string{"app", notGo}, "not a Go binary"},
		{"hangs", []string{"app", filepath.Join(dir, "hangs")}, `hangs describe --json did not answer within 300ms and was stopped (it printed "{\"handlers\": [")`},
		{"garbage", []string{"app", filepath.Join(dir, "garbage")}, `garbage describe --json printed no JSON object: it printed "usage: sluice <command>`},
		{"fails", []string{"app", filepath.Join(dir, "fails")}, `fails describe --json exited with status 2; it printed "sluice: unknown command \"describe\""`},
		{"bad --manifest", []string{"app", fake, "--manifest", badManifest}, "manifest: not a JSON object"},
		{"a directory as a binary", []string{"app", noProject, "--format", "go-binary"}, "is a directory; format go-binary is one file"},
		{"a file as a project", []string{"app", plain, "--format", "python-project"}, "is a file; format python-project is a directory"},
		{"no project file", []string{"app", noProject}, "has no pyproject.toml or requirements*.txt at its root"},
		{"image without a tag", []string{"app", "nginx", "--format", "image"}, "name a tag or, better, a digest"},
		{"missing path", []string{"app", filepath.Join(dir, "nope")}, "for an image reference, give --format image"},
		{"unknown format", []string{"app", fake, "--format", "jar"}, `--format "jar": want one of go-binary, python-project, image`},
		{"bad name", []string{"../app", fake}, `".." is not allowed`},
		{"numeric alias", []string{"app", fake, "--alias", "3"}, "would read as a version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startFakePlatform(t)
			start := time.Now()
			args := append([]string{"code", "push", "--addr", p.rest, "--describe-timeout", "300ms"}, tc.args...)
			_, _, err := runCLI(t, nil, args...)
			if ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sluice %s: %v (exit code %d), want exit code 2 and %q", strings.Join(args, " "), err, ExitCode(err), tc.want)
			}
			if calls := p.called(); len(calls) > 0 {
				t.Errorf("a refused push called %q", calls)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// startRegistry serves a real registry (embedded broker, a directory
// store) on a gRPC address, as the platform does.
func startRegistry(t *testing.T) (string, *registry.Registry) {
	t.Helper()
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	namer, _ := streams.NewNamer("")
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := registry.New(ctx, registry.Config{Brokers: e.Brokers(), Namer: namer, Store: store, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { reg.Run(ctx); close(done) }()
	srv := grpc.NewServer(append(registry.BulkServerOptions(), grpc.MaxRecvMsgSize(registry.MaxChunk))...)
	registry.NewService(reg, gateway.GRPCError).Register(srv)
	l := listenLocal(t)
	hs := newHTTPServer(grpcOrREST(srv, http.NotFoundHandler()), gateway.Limits{})
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close(); srv.Stop(); cancel(); <-done })
	return l.Addr().String(), reg
}

// The code commands against a real registry: push (a binary, a Python
// project, an image), ls, alias, rm refused while aliased, pull back
// byte-identical and executable; the models commands see none of it.
func TestCodeCommands(t *testing.T) {
	t.Parallel()
	addr, reg := startRegistry(t)
	vars := map[string]string{"SLUICE_ADDR": addr}
	code := func(args ...string) (string, error) {
		t.Helper()
		stdout, stderr, err := runCLI(t, vars, append([]string{"code"}, args...)...)
		return stdout + stderr, err
	}
	bin := buildFakeSDK(t, t.TempDir(), "shop")
	want, _ := os.ReadFile(bin)
	if out, err := code("push", "shop", bin, "--alias", "production"); err != nil || !strings.Contains(out, "pushed shop version 1 (go-binary,") {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if out, err := code("push", "shop", bin); err != nil || !strings.Contains(out, "pushed shop version 2") {
		t.Fatalf("second push: %v\n%s", err, out)
	}
	v, err := reg.ResolveBundle("shop@production")
	if err != nil || v.Version != "1" || !bytes.Contains(v.Manifest, []byte(`"handlers":[{"name":"echo"`)) || v.Files[0].Path != "shop" {
		t.Fatalf("resolved %+v (manifest %s), %v", v, v.Manifest, err)
	}
	if out, err := code("ls"); err != nil || !strings.Contains(out, "shop") || !strings.Contains(out, "production→1") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	if out, err := code("ls", "shop"); err != nil || strings.Count(out, "go-binary") != 2 {
		t.Fatalf("ls shop: %v\n%s", err, out)
	}
	if out, err := code("rm", "shop", "1"); ExitCode(err) != 1 || !strings.Contains(err.Error(), "code bundle shop version 1 is aliased as production") {
		t.Fatalf("rm aliased: %v\n%s", err, out)
	}
	if out, err := code("alias", "shop", "production", "2"); err != nil || !strings.Contains(out, "shop@production → 2") {
		t.Fatalf("alias: %v\n%s", err, out)
	}
	if out, err := code("rm", "shop", "1"); err != nil || !strings.Contains(out, "deleted shop version 1") {
		t.Fatalf("rm: %v\n%s", err, out)
	}
	dst := filepath.Join(t.TempDir(), "pulled")
	if out, err := code("pull", "shop@production", dst); err != nil || !strings.Contains(out, "checksums verified") {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dst, "shop"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("pulled binary differs: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dst, "shop")); st.Mode().Perm()&0o100 == 0 {
		t.Fatalf("pulled binary is not executable: %s", st.Mode())
	}
	if _, err := code("pull", "shop@1", dst); ExitCode(err) != 1 || !strings.Contains(err.Error(), `code bundle shop has no version "1"`) {
		t.Fatalf("pull deleted: %v", err)
	}

	// A Python project: its sources, without caches or a virtualenv.
	proj := t.TempDir()
	for p, body := range map[string]string{
		"pyproject.toml": "[project]\nname = \"shop\"\n", "shop/__init__.py": "", "shop/app.py": "print(1)\n",
		"shop/__pycache__/app.cpython-312.pyc": "x", ".venv/pyvenv.cfg": "home = /usr\n", ".venv/lib/site.py": "x", ".git/HEAD": "ref\n",
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(proj, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(proj, p), []byte(body), 0o644))
	}
	if out, err := code("push", "shop-py", proj); err != nil || !strings.Contains(out, "pushed shop-py version 1 (python-project,") || !strings.Contains(out, "3 files") {
		t.Fatalf("push project: %v\n%s", err, out)
	}
	pyDst := t.TempDir()
	if out, err := code("pull", "shop-py", pyDst); err != nil {
		t.Fatalf("pull project: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(pyDst, "shop", "app.py")); err != nil || string(b) != "print(1)\n" {
		t.Fatalf("pulled project: %q %v", b, err)
	}

	// An image: a reference, no files.
	const image = "ghcr.io/acme/shop:1.4"
	if out, err := code("push", "shop-img", image, "--format", "image"); err != nil || !strings.Contains(out, "pushed shop-img version 1 (image, "+image+")") ||
		!strings.Contains(out, "a digest (@sha256:...) pins the image") {
		t.Fatalf("push image: %v\n%s", err, out)
	}
	if out, err := code("pull", "shop-img@1", t.TempDir()); err != nil || !strings.Contains(out, "is the image "+image) {
		t.Fatalf("pull image: %v\n%s", err, out)
	}

	if stdout, _, err := runCLI(t, vars, "models", "ls"); err != nil || strings.Contains(stdout, "shop") {
		t.Fatalf("models ls shows code: %v\n%s", err, stdout)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
