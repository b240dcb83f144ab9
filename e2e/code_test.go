package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// runCode runs `sluice code` against the platform's address.
func runCode(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return run(t, append([]string{"code"}, args...)...)
}

// pulledSame pulls ref into a new directory and checks the file name
// holds want, executable.
func pulledSame(t *testing.T, ref, name string, want []byte) time.Duration {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "pulled")
	start := time.Now()
	if code, out := runCode(t, "pull", ref, dst); code != 0 || !strings.Contains(out, "checksums verified") {
		t.Fatalf("pull %s: %d %s", ref, code, out)
	}
	took := time.Since(start)
	got, err := os.ReadFile(filepath.Join(dst, name))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("pulled %s differs: %v", ref, err)
	}
	if st, _ := os.Stat(filepath.Join(dst, name)); st.Mode().Perm()&0o100 == 0 {
		t.Fatalf("pulled %s is not executable: %s", ref, st.Mode())
	}
	return took
}

// Code bundles through the CLI on whichever store the platform has (a real
// MinIO in make test): a binary built with the SDK pushed (its describe
// --json recorded as the manifest), listed, aliased, its aliased version's
// delete refused, pulled back byte-identical; bad input refused at push.
func TestCodeCLI(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("go-binary bundles are linux/amd64")
	}
	// A stand-in for a user's SDK binary whose describe --json answers.
	fake := filepath.Join(t.TempDir(), "shop")
	if out, err := exec.Command("go", "build", "-o", fake, "../platform/cli/testdata/fakesdk").CombinedOutput(); err != nil {
		t.Fatalf("build the fake SDK binary: %v\n%s", err, out)
	}
	fakeBytes, _ := os.ReadFile(fake)
	if code, out := runCode(t, "push", "e2e-shop", fake, "--alias", "production"); code != 0 || !strings.Contains(out, "pushed e2e-shop version 1 (go-binary,") {
		t.Fatalf("push: %d %s", code, out)
	}
	if code, out := runCode(t, "push", "e2e-shop", fake); code != 0 || !strings.Contains(out, "version 2") {
		t.Fatalf("second push: %d %s", code, out)
	}
	script := writeFile(t, "shop.sh", "#!/bin/sh\necho '{}'\n")
	if code, out := runCode(t, "push", "e2e-shop", script); code != 2 || !strings.Contains(out, "not an ELF binary: a script") {
		t.Fatalf("script: %d %s", code, out)
	}
	if code, out := runCode(t, "ls"); code != 0 || !strings.Contains(out, "e2e-shop") || !strings.Contains(out, "production→1") {
		t.Fatalf("ls: %d %s", code, out)
	}
	if code, out := runCode(t, "ls", "e2e-shop"); code != 0 || strings.Count(out, "go-binary") != 2 {
		t.Fatalf("ls e2e-shop: %d %s", code, out)
	}
	if code, out := runModels(t, "ls"); code != 0 || strings.Contains(out, "e2e-shop") {
		t.Fatalf("models ls lists code: %d %s", code, out)
	}
	if code, out := runCode(t, "rm", "e2e-shop", "1"); code != 1 || !strings.Contains(out, "aliased as production") {
		t.Fatalf("rm aliased: %d %s", code, out)
	}
	if code, out := runCode(t, "alias", "e2e-shop", "production", "2"); code != 0 {
		t.Fatalf("alias: %d %s", code, out)
	}
	if code, out := runCode(t, "rm", "e2e-shop", "1"); code != 0 {
		t.Fatalf("rm: %d %s", code, out)
	}
	pulledSame(t, "e2e-shop@production", "shop", fakeBytes)
	// REST: the version with its manifest as the binary described itself.
	resp, err := http.Get(url("/sluice/v1/code/e2e-shop/versions/production"))
	if err != nil {
		t.Fatal(err)
	}
	var rest struct{ Version, Format, Manifest string }
	err = json.NewDecoder(resp.Body).Decode(&rest)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || rest.Version != "2" || rest.Format != "go-binary" || !strings.Contains(rest.Manifest, `"handlers":[{"name":"echo"`) {
		t.Fatalf("GET /sluice/v1/code/e2e-shop/versions/production: %d %+v %v", resp.StatusCode, rest, err)
	}
	if code, out := runCode(t, "pull", "e2e-shop@1", t.TempDir()); code != 1 || !strings.Contains(out, `no version "1"`) {
		t.Fatalf("pull deleted: %d %s", code, out)
	}

	// The real SDK binary, ./cmd/sluice. Until it has describe, its
	// manifest comes from --manifest (a binary that cannot answer here).
	bin := sluiceBinary(t)
	binBytes, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"push", "e2e-sluice", bin}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := exec.CommandContext(ctx, bin, "describe", "--json").Output()
	cancel()
	if err != nil || !json.Valid(out) {
		t.Logf("%s describe --json: %v: pushing with --manifest", bin, err)
		args = append(args, "--manifest", writeFile(t, "manifest.json", `{"sdk": "go", "handlers": []}`))
	}
	start := time.Now()
	if code, out := runCode(t, args...); code != 0 || !strings.Contains(out, "pushed e2e-sluice version 1") {
		t.Fatalf("push cmd/sluice: %d %s", code, out)
	}
	push := time.Since(start)
	pull := pulledSame(t, "e2e-sluice", "sluice", binBytes)
	mib := float64(len(binBytes)) / (1 << 20)
	t.Logf("cmd/sluice, %.1f MiB: push %s (%.0f MiB/s, hashing included), pull %s (%.0f MiB/s, checksum included)",
		mib, push.Round(time.Millisecond), mib/push.Seconds(), pull.Round(time.Millisecond), mib/pull.Seconds())
}
