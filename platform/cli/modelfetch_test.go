package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// `sluice models fetch`, as a Python replica's loader runs it: by the
// brokers and the store alone (a directory here), a version resolved by
// number, alias or none, its files in the cache with their checksums
// checked, a complete copy reused, a corrupted file refused with nothing
// left behind, an unknown model answered with its code, the versions
// listed.
func TestModelsFetch(t *testing.T) {
	t.Parallel()
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	blobs := t.TempDir()
	store, err := blob.NewDir(blobs)
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
	t.Cleanup(func() { cancel(); <-done })

	publish := func(alias string, files map[string]string) {
		t.Helper()
		u := registry.Upload{Model: "m", Format: "sklearn-joblib", Alias: alias}
		var content bytes.Buffer
		for _, p := range []string{"model.joblib", "extra/labels.txt"} {
			if b, ok := files[p]; ok {
				u.Files = append(u.Files, registry.File{Path: p, Size: int64(len(b))})
				content.WriteString(b)
			}
		}
		if _, err := reg.Publish(ctx, u, &content); err != nil {
			t.Fatal(err)
		}
	}
	publish("prod", map[string]string{"model.joblib": "weights one", "extra/labels.txt": "a\nb\n"})
	publish("", map[string]string{"model.joblib": "weights two"})

	cache := t.TempDir()
	vars := map[string]string{"SLUICE_BROKERS": strings.Join(e.Brokers(), ",")}
	fetch := func(args ...string) (fetched, error) {
		t.Helper()
		stdout, _, err := runCLI(t, vars, append([]string{"models", "fetch"}, args...)...)
		var f fetched
		if jerr := json.Unmarshal([]byte(stdout), &f); jerr != nil {
			t.Fatalf("fetch %v printed no JSON object (%v): %q", args, jerr, stdout)
		}
		return f, err
	}
	for _, c := range []struct{ ref, version, weights string }{{"m", "2", "weights two"}, {"m@1", "1", "weights one"}, {"m@prod", "1", "weights one"}} {
		f, err := fetch(c.ref, "--blob-dir", blobs, "--cache", cache)
		if err != nil || f.Model != "m" || f.Version != c.version || f.Format != "sklearn-joblib" || f.Dir != filepath.Join(cache, "m", c.version) {
			t.Fatalf("fetch %s: %+v, %v", c.ref, f, err)
		}
		if b, err := os.ReadFile(filepath.Join(f.Dir, "model.joblib")); err != nil || string(b) != c.weights {
			t.Errorf("fetch %s: model.joblib %q, %v; want %q", c.ref, b, err, c.weights)
		}
	}
	if b, err := os.ReadFile(filepath.Join(cache, "m", "1", "extra", "labels.txt")); err != nil || string(b) != "a\nb\n" {
		t.Errorf("a file in a subdirectory: %q, %v", b, err)
	}

	// A complete copy is reused: version 1 is gone from the store, and
	// is still fetched.
	if err := os.RemoveAll(filepath.Join(blobs, "models", "m", "1")); err != nil {
		t.Fatal(err)
	}
	if f, err := fetch("m@1", "--blob-dir", blobs, "--cache", cache); err != nil || f.Version != "1" {
		t.Errorf("fetch of a cached version whose files left the store: %+v, %v", f, err)
	}

	// A file that is not what the registry recorded is refused, and no
	// directory of the version is left.
	publish("", map[string]string{"model.joblib": "weights three"})
	stored := filepath.Join(blobs, "models", "m", "3", "files", "model.joblib")
	if err := os.WriteFile(stored, []byte("weights 3!!!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := fetch("m@3", "--blob-dir", blobs, "--cache", cache); err == nil || f.Code != "internal" || !strings.Contains(f.Error, "SHA-256") {
		t.Errorf("a corrupted file: %+v, %v; want an error naming the SHA-256", f, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "m")); len(entries) != 2 {
		t.Errorf("cache after a refused fetch: %d entries, want versions 1 and 2 only", len(entries))
	}

	for ref, says := range map[string]string{"nope": `no model "nope"`, "m@9": `model m has no version "9"`, "m@staging": `no alias "staging"`} {
		if f, err := fetch(ref, "--blob-dir", blobs, "--cache", cache); err == nil || f.Code != "not_found" || !strings.Contains(f.Error, says) {
			t.Errorf("fetch %s: %+v, %v; want not_found saying %s", ref, f, err, says)
		}
	}
	if f, err := fetch("a/b", "--blob-dir", blobs, "--cache", cache); err == nil || f.Code != "invalid_argument" {
		t.Errorf("fetch a/b: %+v, %v; want invalid_argument", f, err)
	}
	if f, err := fetch("m", "--cache", cache); err == nil || f.Code != "failed_precondition" || !strings.Contains(f.Error, "--blob-dir") {
		t.Errorf("fetch with no store: %+v, %v", f, err)
	}
	f, err := fetch("m", "--versions")
	if err != nil || len(f.Versions) != 3 || f.Versions[2].Version != "3" || f.Aliases["prod"] != "1" {
		t.Errorf("--versions: %+v, %v", f, err)
	}
}
