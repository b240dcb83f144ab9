package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runModels runs `sluice models` against the platform's address, the
// same as every client command's (run sets SLUICE_ADDR).
func runModels(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return run(t, append([]string{"models"}, args...)...)
}

// The registry through the CLI, on whichever store the platform has (a real
// MinIO in make test): push a directory, list, alias, refuse bad names and
// duplicates and aliased deletes, pull it back identical.
func TestModelsCLI(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	big := make([]byte, 5<<20)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(src, "saved_model.pb"), big, 0o644))
	must(t, os.MkdirAll(filepath.Join(src, "variables"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "variables", "variables.index"), []byte("index"), 0o644))

	if code, out := runModels(t, "push", "e2e-model", src, "--format", "custom", "--alias", "production"); code != 0 || !strings.Contains(out, "pushed e2e-model version 1 (5.0 MiB, 2 files)") {
		t.Fatalf("push: %d %s", code, out)
	}
	if code, out := runModels(t, "push", "e2e-model", src); code != 0 || !strings.Contains(out, "version 2") {
		t.Fatalf("second push: %d %s", code, out)
	}
	if code, out := runModels(t, "push", "e2e-model", src, "--version", "2"); code != 1 || !strings.Contains(out, "already has version 2") {
		t.Fatalf("duplicate: %d %s", code, out)
	}
	if code, out := runModels(t, "push", "../evil", src); code != 2 || !strings.Contains(out, `".." is not allowed`) {
		t.Fatalf("bad name: %d %s", code, out)
	}
	if code, out := runModels(t, "ls"); code != 0 || !strings.Contains(out, "e2e-model") || !strings.Contains(out, "production→1") {
		t.Fatalf("ls: %d %s", code, out)
	}
	if code, out := runModels(t, "rm", "e2e-model", "1"); code != 1 || !strings.Contains(out, "aliased as production") {
		t.Fatalf("rm aliased: %d %s", code, out)
	}
	if code, out := runModels(t, "alias", "e2e-model", "production", "2"); code != 0 {
		t.Fatalf("alias: %d %s", code, out)
	}
	if code, out := runModels(t, "rm", "e2e-model", "1"); code != 0 {
		t.Fatalf("rm: %d %s", code, out)
	}
	dst := filepath.Join(t.TempDir(), "pulled")
	if code, out := runModels(t, "pull", "e2e-model@production", dst); code != 0 || !strings.Contains(out, "checksums verified") {
		t.Fatalf("pull: %d %s", code, out)
	}
	got, err := os.ReadFile(filepath.Join(dst, "saved_model.pb"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("pulled artifact differs: %v", err)
	}
	if code, out := runModels(t, "pull", "e2e-model:1", dst); code != 1 || !strings.Contains(out, `no version "1"`) {
		t.Fatalf("pull deleted: %d %s", code, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
