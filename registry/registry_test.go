package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stores returns the stores to run against: a local directory always,
// and a real MinIO when SLUICE_TEST_S3_* name one.
func stores(t *testing.T) map[string]Store {
	t.Helper()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Store{"dir": d}
	if ep := os.Getenv("SLUICE_TEST_S3_ENDPOINT"); ep != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := blob.NewS3(ctx, blob.S3Config{Endpoint: ep, AccessKey: os.Getenv("SLUICE_TEST_S3_ACCESS_KEY"),
			SecretKey: os.Getenv("SLUICE_TEST_S3_SECRET_KEY"), CAFile: os.Getenv("SLUICE_TEST_S3_CA_FILE"),
			Bucket: "registry-test", Prefix: streams.Instance()}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		out["minio"] = s
	}
	return out
}

// newRegistry starts a registry on its own embedded broker.
func newRegistry(t *testing.T, store Store) (*Registry, []string) {
	t.Helper()
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return startRegistry(t, e.Brokers(), store), e.Brokers()
}

func startRegistry(t *testing.T, brokers []string, store Store) *Registry {
	t.Helper()
	r, err := New(context.Background(), Config{Brokers: brokers, Store: store, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// upload builds an Upload of named contents, with checksums.
func upload(model, version string, files map[string][]byte, order ...string) (Upload, io.Reader) {
	u := Upload{Model: model, Version: version, Format: "custom"}
	var all bytes.Buffer
	for _, p := range order {
		u.Files = append(u.Files, File{Path: p, Size: int64(len(files[p])), SHA256: sum(files[p])})
		all.Write(files[p])
	}
	return u, &all
}

func TestPublishListAliasDelete(t *testing.T) {
	t.Parallel()
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, brokers := newRegistry(t, store)
			ctx := context.Background()
			files := map[string][]byte{"saved_model.pb": bytes.Repeat([]byte("w"), 3<<20), "variables/a": []byte("abc"), "empty": nil}
			u, content := upload("mnist", "", files, "empty", "saved_model.pb", "variables/a")
			u.Alias = "production"
			v1, err := r.Publish(ctx, u, content)
			if err != nil {
				t.Fatal(err)
			}
			if v1.Version != "1" || v1.Size != 3<<20+3 || len(v1.Files) != 3 {
				t.Fatalf("v1 = %+v", v1)
			}
			u, content = upload("mnist", "", files, "empty", "saved_model.pb", "variables/a")
			v2, err := r.Publish(ctx, u, content)
			if err != nil || v2.Version != "2" {
				t.Fatalf("v2 = %+v, %v", v2, err)
			}
			// Duplicate version: conflict.
			u, content = upload("mnist", "2", files, "empty")
			if _, err := r.Publish(ctx, u, content); streams.CodeOf(err) != streams.CodeAlreadyExists {
				t.Fatalf("duplicate version: %v, want already_exists", err)
			}
			// Aliased version: delete refused, naming the alias.
			if _, err := r.DeleteVersion(ctx, "mnist", "1", false); streams.CodeOf(err) != streams.CodeFailedPrecondition || !strings.Contains(err.Error(), "production") {
				t.Fatalf("delete aliased: %v", err)
			}
			if _, err := r.SetAlias(ctx, "mnist", "production", "2"); err != nil {
				t.Fatal(err)
			}
			if v, err := r.Version("mnist", "@production"); err != nil || v.Version != "2" {
				t.Fatalf("@production = %v, %v", v, err)
			}
			if _, err := r.DeleteVersion(ctx, "mnist", "1", false); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Version("mnist", "1"); streams.CodeOf(err) != streams.CodeNotFound {
				t.Fatalf("deleted version still there: %v", err)
			}
			// The artifact reads back byte for byte.
			v, _ := r.Version("mnist", "")
			rc, err := r.Open(ctx, v, v.Files[1])
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, files["saved_model.pb"]) {
				t.Fatal("artifact differs")
			}
			// A second registry rebuilds the same state from the events.
			r2 := startRegistry(t, brokers, store)
			deadline := time.Now().Add(10 * time.Second)
			for {
				m, err := r2.Model("mnist")
				if err == nil && len(m.Versions) == 1 && m.Aliases["production"] == "2" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("rebuilt state: %+v %v", m, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// A short, corrupt or oversized upload is refused and leaves nothing
// visible, and its stored objects are deleted.
func TestPublishRefusesBadContent(t *testing.T) {
	t.Parallel()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newRegistry(t, store)
	data := []byte("0123456789")
	tests := []struct {
		name    string
		files   []File
		content string
		code    streams.Code
		msg     string
	}{
		{"checksum", []File{{Path: "w", Size: 10, SHA256: sum([]byte("something else"))}}, string(data), streams.CodeInvalidArgument, "checksum mismatch"},
		{"short", []File{{Path: "w", Size: 20}}, string(data), streams.CodeInvalidArgument, "declared 20 bytes, received 10"},
		{"extra", []File{{Path: "w", Size: 5}}, string(data), streams.CodeInvalidArgument, "more content"},
		{"bad path", []File{{Path: "../w", Size: 10}}, string(data), streams.CodeInvalidArgument, `".." segment`},
		{"bad name", nil, "", streams.CodeInvalidArgument, "model name"},
		{"no files", []File{}, "", streams.CodeInvalidArgument, "has no files"},
		{"duplicate path", []File{{Path: "w", Size: 5}, {Path: "w", Size: 5}}, string(data), streams.CodeInvalidArgument, "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			model := "m-" + strings.ReplaceAll(tc.name, " ", "-")
			if tc.name == "bad name" {
				model = "a/b"
				tc.files = []File{{Path: "w", Size: 1}}
			}
			_, err := r.Publish(context.Background(), Upload{Model: model, Files: tc.files}, strings.NewReader(tc.content))
			if streams.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Publish = %v, want %s containing %q", err, tc.code, tc.msg)
			}
			if _, err := r.Model(model); streams.CodeOf(err) != streams.CodeNotFound {
				t.Fatalf("a refused version is visible: %v", err)
			}
			if _, _, err := store.Get(context.Background(), ObjectKey(model, "1", "w")); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("the refused upload's object was left behind: %v", err)
			}
		})
	}
}

// failingStore is unreachable for writes.
type failingStore struct{ Store }

func (failingStore) Put(context.Context, string, io.Reader, int64) (blob.Info, error) {
	return blob.Info{}, blob.ErrUnavailable
}

// With the store unreachable, publishing fails with unavailable and the
// registry keeps serving what it knows.
func TestStoreDownKeepsReads(t *testing.T) {
	t.Parallel()
	dir, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, brokers := newRegistry(t, dir)
	u, content := upload("kept", "", map[string][]byte{"w": []byte("x")}, "w")
	if _, err := r.Publish(context.Background(), u, content); err != nil {
		t.Fatal(err)
	}
	down := startRegistry(t, brokers, failingStore{dir})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := down.Version("kept", "1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second registry never learned of kept/1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	u, content = upload("kept", "", map[string][]byte{"w": []byte("y")}, "w")
	if _, err := down.Publish(context.Background(), u, content); streams.CodeOf(err) != streams.CodeUnavailable {
		t.Fatalf("publish with the store down: %v, want unavailable", err)
	}
	if v, err := down.Version("kept", ""); err != nil || v.Version != "1" {
		t.Fatalf("reads with the store down: %v %v", v, err)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		model, version, alias, want string
	}{
		{"resnet-50.v2", "3", "production", ""},
		{"", "", "", "length 0"},
		{"a/b", "", "", `'/'`},
		{"a..b", "", "", `".."`},
		{"-a", "", "", `'-'`},
		{"a\x00b", "", "", `'\x00'`},
		{strings.Repeat("a", 129), "", "", "length 129"},
		{"m", "v/1", "", "version"},
		{"m", "", "7", "would read as a version"},
	}
	for _, tc := range tests {
		err := CheckNames(tc.model, tc.version, tc.alias)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckNames(%q, %q, %q) = %v, want %q", tc.model, tc.version, tc.alias, err, tc.want)
		}
	}
}
