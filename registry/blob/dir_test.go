package blob

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDir runs the Store suite on a Dir. Not parallel: testStore measures
// the heap first.
func TestDir(t *testing.T) {
	d, err := NewDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, d)
	// Nothing half-written is left behind.
	if tmp := findFiles(t, d.Root(), tmpPrefix); len(tmp) > 0 {
		t.Errorf("temporary files left in the store: %q", tmp)
	}
}

func newTestDir(t *testing.T) *Dir {
	t.Helper()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNewDir(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "a", "b")
	d, err := NewDir(root)
	if err != nil {
		t.Fatalf("NewDir(%q): %v", root, err)
	}
	if fi, err := os.Stat(d.Root()); err != nil || !fi.IsDir() {
		t.Fatalf("NewDir did not create %s: %v", root, err)
	}
	if _, err := NewDir(""); err == nil {
		t.Fatal("NewDir(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDir(file); err == nil {
		t.Fatal("NewDir on a regular file succeeded")
	}
}

func TestDirReservedKeys(t *testing.T) {
	t.Parallel()
	d := newTestDir(t)
	for _, key := range []string{"a.sha256", "x/y.sha256/z", ".sluice-tmp-123", "m/.sluice-tmp-x"} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			_, err := d.Put(t.Context(), key, strings.NewReader("x"), 1)
			if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), key) {
				t.Fatalf("Put(%q): err = %v, want ErrInvalidKey naming the key", key, err)
			}
		})
	}
}

func TestDirSidecar(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := newTestDir(t)
	data := []byte("weights")
	want := sha256Hex(data)
	mustPut(t, d, "m/w", data)
	side := filepath.Join(d.Root(), "m", "w.sha256")
	got, err := os.ReadFile(side)
	if err != nil || string(got) != want+"\n" {
		t.Fatalf("sidecar = %q, %v; want %q", got, err, want+"\n")
	}

	tests := []struct {
		name   string
		damage func() error
	}{
		{"missing", func() error { return os.Remove(side) }},
		{"malformed", func() error { return os.WriteFile(side, []byte("not a digest\n"), 0o644) }},
		{"object copied in by hand", func() error {
			if err := os.Remove(side); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d.Root(), "m", "w"), data, 0o644)
		}},
	}
	for _, tc := range tests {
		if err := tc.damage(); err != nil {
			t.Fatal(err)
		}
		info, err := d.Stat(ctx, "m/w")
		if err != nil || info.SHA256 != want {
			t.Fatalf("%s sidecar: Stat = %+v, %v; want SHA256 %s", tc.name, info, err, want)
		}
		// Stat recorded what it computed.
		if got, err := os.ReadFile(side); err != nil || string(got) != want+"\n" {
			t.Fatalf("%s sidecar: after Stat the sidecar is %q, %v; want %q", tc.name, got, err, want+"\n")
		}
	}

	if err := os.Remove(side); err != nil {
		t.Fatal(err)
	}
	rc, info, err := d.Get(ctx, "m/w")
	if err != nil || info.SHA256 != want {
		t.Fatalf("Get without sidecar = %+v, %v; want SHA256 %s", info, err, want)
	}
	if b, err := io.ReadAll(rc); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("Get read %q, %v", b, err)
	}
	rc.Close()

	if err := d.Delete(ctx, "m/w"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(side); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete left the sidecar: %v", err)
	}
}

// TestDirPutIsAtomic checks that an object being written is not visible
// until its Put returns, and that a failed Put leaves nothing behind.
func TestDirPutIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := newTestDir(t)
	old := []byte("version 1")
	mustPut(t, d, "k", old)

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := d.Put(ctx, "k", pr, -1)
		done <- err
	}()
	if _, err := pw.Write(bytes.Repeat([]byte("2"), 3*mib)); err != nil {
		t.Fatal(err)
	}
	// Half written: readers still see version 1, List shows no temp file.
	checkGet(t, d, "k", bytes.NewReader(old), int64(len(old)), sha256Hex(old))
	infos, err := d.List(ctx, "")
	if err != nil || len(infos) != 1 || infos[0].Key != "k" {
		t.Fatalf("List during a Put = %+v, %v; want only k", infos, err)
	}
	pw.CloseWithError(errors.New("upload interrupted"))
	if err := <-done; err == nil {
		t.Fatal("Put from an interrupted reader succeeded")
	}
	checkGet(t, d, "k", bytes.NewReader(old), int64(len(old)), sha256Hex(old))
	if tmp := findFiles(t, d.Root(), tmpPrefix); len(tmp) > 0 {
		t.Fatalf("failed Put left %q", tmp)
	}

	// A reader that opened the old version keeps reading it after a Put
	// replaces the key.
	rc, _, err := d.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	mustPut(t, d, "k", []byte("version 3"))
	if b, err := io.ReadAll(rc); err != nil || !bytes.Equal(b, old) {
		t.Fatalf("open reader read %q, %v after the key was replaced; want %q", b, err, old)
	}
}

func TestDirListHidesInternalFiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := newTestDir(t)
	for _, k := range []string{"b", "a/x", "a-b"} {
		mustPut(t, d, k, []byte(k))
	}
	// Leftovers of a crashed Put.
	if err := os.WriteFile(filepath.Join(d.Root(), "a", tmpPrefix+"123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	infos, err := d.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, info := range infos {
		keys = append(keys, info.Key)
	}
	if want := []string{"a-b", "a/x", "b"}; !slices.Equal(keys, want) {
		t.Fatalf("List(\"\") = %q, want %q", keys, want)
	}
}

// TestDirCopyLinks checks that Copy shares the source's bytes (a hard link)
// and that replacing the source afterwards leaves the copy alone.
func TestDirCopyLinks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := newTestDir(t)
	data := []byte("big weights")
	mustPut(t, d, "staging/u1", data)
	before := time.Now()
	if err := d.Copy(ctx, "models/m/v1", "staging/u1"); err != nil {
		t.Fatal(err)
	}
	src, err := os.Stat(filepath.Join(d.Root(), "staging", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.Stat(filepath.Join(d.Root(), "models", "m", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(src, dst) {
		t.Error("Copy did not hard-link")
	}
	info, err := d.Stat(ctx, "models/m/v1")
	if err != nil || info.SHA256 != sha256Hex(data) {
		t.Fatalf("Stat(copy) = %+v, %v", info, err)
	}
	if info.Modified.After(before) {
		t.Logf("note: linked copy has a later mtime than expected: %v", info.Modified)
	}
}

// findFiles returns the files under root whose names start with prefix.
func findFiles(t *testing.T, root, prefix string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), prefix) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
