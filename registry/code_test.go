package registry

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// elfHeader is a 64-byte ELF header with the given identity.
func elfHeader(class elf.Class, osabi elf.OSABI, typ elf.Type, machine elf.Machine) []byte {
	h := make([]byte, elfHeaderSize)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION], h[elf.EI_OSABI] = byte(class), byte(elf.ELFDATA2LSB), 1, byte(osabi)
	binary.LittleEndian.PutUint16(h[16:], uint16(typ))
	binary.LittleEndian.PutUint16(h[18:], uint16(machine))
	return h
}

// goBinary is content that passes the server's go-binary check.
func goBinary(body string) []byte {
	return append(elfHeader(elf.ELFCLASS64, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_X86_64), body...)
}

const testManifest = `{"handlers": [{"name": "Echo", "input": "string", "output": "string"}]}`

// bundleUpload builds a go-binary upload of content.
func bundleUpload(name string, content []byte) (BundleUpload, io.Reader) {
	return BundleUpload{Name: name, Format: FormatGoBinary, Manifest: json.RawMessage(testManifest),
		Files: []File{{Path: "app", Size: int64(len(content)), SHA256: sum(content)}}}, bytes.NewReader(content)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Code bundles publish, resolve, alias and delete as models do, beside a
// model of the same name that none of it touches.
func TestBundlePublishResolveAliasDelete(t *testing.T) {
	t.Parallel()
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, brokers := newRegistry(t, store)
			ctx := context.Background()
			mu, mcontent := upload("shop", "", map[string][]byte{"app": []byte("weights")}, "app")
			if _, err := r.Publish(ctx, mu, mcontent); err != nil {
				t.Fatal(err)
			}
			bin1, bin2 := goBinary("one"), goBinary(strings.Repeat("two", 1<<20))
			u, content := bundleUpload("shop", bin1)
			u.Manifest = json.RawMessage("{\n  \"handlers\": []\n}\n")
			v1, err := r.PublishBundle(ctx, u, content)
			if err != nil {
				t.Fatal(err)
			}
			if v1.Version != "1" || v1.Format != FormatGoBinary || string(v1.Manifest) != `{"handlers":[]}` || v1.Size != int64(len(bin1)) || v1.Files[0].SHA256 != sum(bin1) {
				t.Fatalf("v1 = %+v (manifest %s)", v1, v1.Manifest)
			}
			u, content = bundleUpload("shop", bin2)
			u.Alias = "production"
			if v2, err := r.PublishBundle(ctx, u, content); err != nil || v2.Version != "2" {
				t.Fatalf("v2 = %+v, %v", v2, err)
			}
			for ref, want := range map[string]string{"shop": "2", "shop@1": "1", "shop@2": "2", "shop@production": "2"} {
				if v, err := r.ResolveBundle(ref); err != nil || v.Version != want {
					t.Errorf("ResolveBundle(%q) = %v, %v; want version %s", ref, v, err, want)
				}
			}
			for ref, msg := range map[string]string{"shop@3": `code bundle shop has no version "3"`, "shop@canary": `code bundle shop has no alias "canary"`, "nope": `no code bundle "nope"`} {
				if _, err := r.ResolveBundle(ref); streams.CodeOf(err) != streams.CodeNotFound || !strings.Contains(err.Error(), msg) {
					t.Errorf("ResolveBundle(%q) = %v, want not_found %q", ref, err, msg)
				}
			}
			if _, err := r.DeleteBundleVersion(ctx, "shop", "2", false); streams.CodeOf(err) != streams.CodeFailedPrecondition || !strings.Contains(err.Error(), "aliased as production") {
				t.Fatalf("delete aliased: %v", err)
			}
			if _, err := r.SetBundleAlias(ctx, "shop", "production", "1"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.SetBundleAlias(ctx, "shop", "canary", "production"); err != nil { // an alias's version
				t.Fatal(err)
			}
			if b, _ := r.Bundle("shop"); b.Aliases["canary"] != "1" {
				t.Fatalf("canary → %q, want 1", b.Aliases["canary"])
			}
			if _, err := r.DeleteBundleVersion(ctx, "shop", "2", false); err != nil {
				t.Fatal(err)
			}
			if _, _, err := store.Get(ctx, BundleObjectKey("shop", "2", "app")); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("deleted version's file: %v", err)
			}
			v, err := r.ResolveBundle("shop@production")
			if err != nil {
				t.Fatal(err)
			}
			rc, err := r.OpenBundle(ctx, v, v.Files[0])
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, bin1) {
				t.Fatal("bundle reads back different")
			}
			// The model of the same name is untouched, and each kind lists
			// only its own.
			if m, err := r.Model("shop"); err != nil || len(m.Versions) != 1 || m.Versions[0].Files[0].SHA256 != sum([]byte("weights")) {
				t.Fatalf("model shop: %+v %v", m, err)
			}
			if ms, bs := r.Models(), r.Bundles(); len(ms) != 1 || len(bs) != 1 || len(bs[0].Versions) != 1 {
				t.Fatalf("models %d, bundles %+v", len(ms), bs)
			}
			rc, err = r.Open(ctx, &r.Models()[0].Versions[0], File{Path: "app"})
			if err != nil {
				t.Fatal(err)
			}
			got, _ = io.ReadAll(rc)
			rc.Close()
			if string(got) != "weights" {
				t.Fatalf("model file reads %q", got)
			}
			// A second registry rebuilds both from the events.
			r2 := startRegistry(t, brokers, store)
			waitFor(t, "the rebuilt state", func() bool {
				b, err := r2.Bundle("shop")
				m, merr := r2.Model("shop")
				return err == nil && merr == nil && len(b.Versions) == 1 && b.Aliases["production"] == "1" && len(m.Versions) == 1 &&
					string(b.Versions[0].Manifest) == `{"handlers":[]}`
			})
		})
	}
}

// Every refusal is invalid_argument with its reason, and leaves nothing
// visible or stored.
func TestBundleRefused(t *testing.T) {
	t.Parallel()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newRegistry(t, store)
	arm := append(elfHeader(elf.ELFCLASS64, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_AARCH64), "x"...)
	freebsd := append(elfHeader(elf.ELFCLASS64, elf.ELFOSABI_FREEBSD, elf.ET_EXEC, elf.EM_X86_64), "x"...)
	script := []byte("#!/bin/sh\necho '{}'\n")
	for _, tc := range []struct {
		name string
		edit func(u *BundleUpload)
		body []byte
		msg  string
	}{
		{"bad format", func(u *BundleUpload) { u.Format = "jar" }, nil, `format "jar": want one of go-binary, python-project, image`},
		{"no manifest", func(u *BundleUpload) { u.Manifest = nil }, nil, "the manifest (the binary's `describe --json`) is required"},
		{"manifest not an object", func(u *BundleUpload) { u.Manifest = json.RawMessage(`["a"]`) }, nil, `manifest: not a JSON object: "[\"a\"]"`},
		{"manifest not JSON", func(u *BundleUpload) { u.Manifest = json.RawMessage(`usage: app`) }, nil, "manifest: not a JSON object"},
		{"manifest too big", func(u *BundleUpload) {
			u.Manifest = json.RawMessage(`{"a":"` + strings.Repeat("x", MaxManifest) + `"}`)
		}, nil, "over the limit"},
		{"two files", func(u *BundleUpload) { u.Files = append(u.Files, File{Path: "b", Size: 1}) }, nil, "one file, the binary; got 2"},
		{"a script", nil, script, `not an ELF binary: a script ("#!/bin/sh")`},
		{"a plain file", nil, []byte("hello"), "not an ELF binary: a plain file"},
		{"arm64", nil, arm, "an ELF binary for arm64 (ELFCLASS64, ELFDATA2LSB, EM_AARCH64), want linux/amd64"},
		{"freebsd", nil, freebsd, "an x86-64 ELF binary for ELFOSABI_FREEBSD, want linux/amd64"},
		{"checksum", func(u *BundleUpload) { u.Files[0].SHA256 = sum([]byte("other")) }, nil, "checksum mismatch"},
		{"short", func(u *BundleUpload) { u.Files[0].Size += 10 }, nil, "received"},
		{"image on a binary", func(u *BundleUpload) { u.Image = "app:1" }, nil, "an image reference is for format image only"},
		{"image with files", func(u *BundleUpload) { u.Format, u.Image = FormatImage, "app:1" }, nil, "an image reference has no files; got 1"},
		{"image without a tag", func(u *BundleUpload) { u.Format, u.Image, u.Files = FormatImage, "app", nil }, []byte{}, "name a tag or, better, a digest"},
		{"python without a project file", func(u *BundleUpload) { u.Format = FormatPythonProject; u.Manifest = nil }, nil, "no pyproject.toml or requirements*.txt"},
		{"bad alias", func(u *BundleUpload) { u.Alias = "7" }, nil, "would read as a version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "b-" + strings.ReplaceAll(tc.name, " ", "-")
			body := tc.body
			if body == nil {
				body = goBinary("body")
			}
			u, content := bundleUpload(name, body)
			if tc.edit != nil {
				tc.edit(&u)
			}
			_, err := r.PublishBundle(context.Background(), u, content)
			if streams.CodeOf(err) != streams.CodeInvalidArgument || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("PublishBundle = %v, want invalid_argument containing %q", err, tc.msg)
			}
			if _, err := r.Bundle(name); streams.CodeOf(err) != streams.CodeNotFound {
				t.Fatalf("a refused version is visible: %v", err)
			}
			for _, key := range []string{BundleObjectKey(name, "1", "app"), manifestKey(KindCode, name, "1")} {
				if _, _, err := store.Get(context.Background(), key); !errors.Is(err, blob.ErrNotFound) {
					t.Fatalf("%s left behind: %v", key, err)
				}
			}
		})
	}
}

// A python project (many files) and an image reference (none) publish.
func TestBundleFormats(t *testing.T) {
	t.Parallel()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newRegistry(t, store)
	ctx := context.Background()
	files := map[string][]byte{"requirements-gpu.txt": []byte("torch\n"), "app/main.py": []byte("print(1)\n"), "app/__init__.py": nil}
	u, content := upload("py", "", files, "app/__init__.py", "app/main.py", "requirements-gpu.txt")
	v, err := r.PublishBundle(ctx, BundleUpload{Name: "py", Format: FormatPythonProject, Files: u.Files}, content)
	if err != nil || len(v.Files) != 3 || v.Manifest != nil {
		t.Fatalf("python project: %+v %v", v, err)
	}
	const image = "registry.example.com:5000/team/shop@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	v, err = r.PublishBundle(ctx, BundleUpload{Name: "img", Format: FormatImage, Image: image, Manifest: json.RawMessage(testManifest)}, strings.NewReader(""))
	if err != nil || v.Image != image || len(v.Files) != 0 || v.Version != "1" {
		t.Fatalf("image: %+v %v", v, err)
	}
	if v, err := r.ResolveBundle("img"); err != nil || v.Image != image {
		t.Fatalf("resolve image: %+v %v", v, err)
	}
}

// blockingReader hands out its content, then blocks until released or
// failed.
type blockingReader struct {
	r       io.Reader
	reached chan struct{}
	release chan error
	once    sync.Once
}

func (b *blockingReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(func() { close(b.reached) })
		if err := <-b.release; err != nil {
			return 0, err
		}
	}
	return n, err
}

// A version is invisible while its files upload, to every reader and to
// a resolve; an upload that fails halfway never shows.
func TestBundleNeverHalfVisible(t *testing.T) {
	t.Parallel()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, brokers := newRegistry(t, store)
	follower := startRegistry(t, brokers, nil)
	ctx := context.Background()
	bin := goBinary(strings.Repeat("x", 1<<20))
	for _, fail := range []bool{true, false} {
		u, _ := bundleUpload("half", bin)
		half := &blockingReader{r: bytes.NewReader(bin[:len(bin)/2]), reached: make(chan struct{}), release: make(chan error, 1)}
		content := io.MultiReader(half, bytes.NewReader(bin[len(bin)/2:]))
		done := make(chan error, 1)
		go func() { _, err := r.PublishBundle(ctx, u, content); done <- err }()
		<-half.reached
		for _, reg := range []*Registry{r, follower} {
			if _, err := reg.ResolveBundle("half"); streams.CodeOf(err) != streams.CodeNotFound {
				t.Fatalf("half-uploaded version resolves: %v", err)
			}
		}
		if fail {
			half.release <- errors.New("client went away")
			if err := <-done; err == nil {
				t.Fatal("a failed upload published")
			}
			if _, _, err := store.Get(ctx, BundleObjectKey("half", "1", "app")); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("failed upload's file left behind: %v", err)
			}
			continue
		}
		half.release <- nil
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the follower to see half@1", func() bool {
			v, err := follower.ResolveBundle("half")
			return err == nil && v.Version == "1" && v.Size == int64(len(bin))
		})
	}
}

// Concurrent publishes of one entry each keep their version: every
// change starts from the state the one before it left.
func TestConcurrentPublishKeepsEveryVersion(t *testing.T) {
	t.Parallel()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newRegistry(t, store)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			u, content := upload("racy", "", map[string][]byte{"w": fmt.Appendf(nil, "model %d", i)}, "w")
			_, err := r.Publish(context.Background(), u, content)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			u, content := bundleUpload("racy", goBinary(fmt.Sprint(i)))
			_, err := r.PublishBundle(context.Background(), u, content)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	m, _ := r.Model("racy")
	b, _ := r.Bundle("racy")
	if len(m.Versions) != n || len(b.Versions) != n {
		t.Fatalf("model versions %d, bundle versions %d, want %d each", len(m.Versions), len(b.Versions), n)
	}
}

// Code events are keyed apart from models' (a model named like a bundle
// never shares a key), carry the kind, reach watchers, and a tombstone
// removes the bundle it names; a model event as written before code
// bundles still applies.
func TestBundleEvents(t *testing.T) {
	t.Parallel()
	r := &Registry{models: newTable[Version](), code: newTable[BundleVersion](), cfg: Config{Log: quiet}}
	var seen []Event
	r.Watch(func(ev Event) { seen = append(seen, ev) })
	state := &Bundle{Name: "x", Versions: []BundleVersion{{Bundle: "x", Version: "1", Format: FormatGoBinary}}}
	b, _ := json.Marshal(Event{Kind: KindCode, Type: VersionPublished, Bundle: "x", Version: "1", Code: state})
	r.apply(context.Background(), kgoRecord(recordKey(KindCode, "x"), b))
	old := `{"type":"version_published","model":"x","version":"1","at":"2025-01-01T00:00:00Z","state":{"name":"x","versions":[{"model":"x","version":"1","files":[],"size":0,"created":"2025-01-01T00:00:00Z"}]}}`
	r.apply(context.Background(), kgoRecord("x", []byte(old)))
	if _, err := r.Bundle("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Model("x"); err != nil {
		t.Fatal(err)
	}
	r.apply(context.Background(), kgoRecord("code/x", nil))
	if _, err := r.Bundle("x"); streams.CodeOf(err) != streams.CodeNotFound {
		t.Fatalf("tombstone left the bundle: %v", err)
	}
	if _, err := r.Model("x"); err != nil {
		t.Fatalf("a bundle's tombstone removed the model: %v", err)
	}
	r.apply(context.Background(), kgoRecord("later", []byte(`{"kind":"plugin","type":"version_published","model":"later"}`)))
	if _, err := r.Model("later"); err == nil {
		t.Fatal("an event of an unknown kind applied as a model")
	}
	if len(seen) != 3 || seen[0].Kind != KindCode || seen[0].Model != "" || seen[1].Model != "x" || seen[2].Bundle != "x" {
		t.Fatalf("watchers saw %+v", seen)
	}
}

func TestParseBundleRef(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string][2]string{
		"shop": {"shop", ""}, "shop@3": {"shop", "3"}, "shop@prod": {"shop", "@prod"}, "shop@@prod": {"shop", "@prod"}, "shop@": {"shop", ""},
	} {
		if name, v := ParseBundleRef(ref); name != want[0] || v != want[1] {
			t.Errorf("ParseBundleRef(%q) = %q, %q; want %q", ref, name, v, want)
		}
	}
}

func TestParseImageRef(t *testing.T) {
	t.Parallel()
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct{ ref, want string }{
		{"shop:1.2", ""},
		{"team/shop:latest", ""},
		{"registry.example.com:5000/team/shop:v1", ""},
		{"localhost/shop@" + digest, ""},
		{"ghcr.io/org/a_b__c-d:v1@" + digest, ""},
		{"shop", "name a tag"},
		{"Shop:1", `path component "Shop"`},
		{"shop:", "the tag"},
		{"shop:-x", "the tag"},
		{"shop@sha256:zz", "the digest"},
		{":1", "no image name"},
		{"a//b:1", `path component ""`},
		{"bad_host:5000x/shop:1", `registry host "bad_host:5000x"`},
		{"host:x/shop:1", `registry host "host:x"`},
		{strings.Repeat("a", 256) + ":1", "over 255"},
	} {
		ref, err := ParseImageRef(tc.ref)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ParseImageRef(%q): %v", tc.ref, err)
		case tc.want == "" && ref.String() != tc.ref:
			t.Errorf("ParseImageRef(%q) = %+v, which prints %q", tc.ref, ref, ref.String())
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ParseImageRef(%q) = %+v, %v; want an error with %q", tc.ref, ref, err, tc.want)
		}
	}
}

// Whatever the input, ParseImageRef does not panic, and what it accepts
// prints back as given.
func FuzzParseImageRef(f *testing.F) {
	for _, s := range []string{"shop:1", "a.b:5000/c/d:e@sha256:" + strings.Repeat("0", 64), "localhost/x@y:0123456789abcdef0123456789abcdef", ":", "@", "a/:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseImageRef(s)
		if err == nil && ref.String() != s {
			t.Fatalf("ParseImageRef(%q) = %+v, prints %q", s, ref, ref.String())
		}
	})
}

func TestCheckGoBinaryHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		head []byte
		want string
	}{
		{"linux amd64", elfHeader(elf.ELFCLASS64, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_X86_64), ""},
		{"GNU/Linux OSABI, PIE", elfHeader(elf.ELFCLASS64, elf.ELFOSABI_LINUX, elf.ET_DYN, elf.EM_X86_64), ""},
		{"32-bit x86", elfHeader(elf.ELFCLASS32, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_386), "an ELF binary for 386 (ELFCLASS32"},
		{"riscv", elfHeader(elf.ELFCLASS64, elf.ELFOSABI_NONE, elf.ET_EXEC, elf.EM_RISCV), "an ELF binary for riscv64"},
		{"object file", elfHeader(elf.ELFCLASS64, elf.ELFOSABI_NONE, elf.ET_REL, elf.EM_X86_64), "an ELF ET_REL, not an executable"},
		{"truncated", []byte("\x7fELF\x02"), "a truncated ELF header"},
		{"empty", nil, "a plain file"},
		{"zip", []byte("PK\x03\x04"), "a plain file"},
	} {
		err := CheckGoBinaryHeader(tc.head)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(exe)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		head := make([]byte, elfHeaderSize)
		if _, err := io.ReadFull(f, head); err != nil {
			t.Fatal(err)
		}
		if err := CheckGoBinaryHeader(head); err != nil {
			t.Fatalf("this test's own binary: %v", err)
		}
	}
}

func kgoRecord(key string, value []byte) *kgo.Record {
	return &kgo.Record{Key: []byte(key), Value: value}
}
