package cli

import (
	"slices"
	"testing"

	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

func TestPythonAppName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"hello:language_classifier", "language-classifier"},
		{"pkg.mod:App", "app"},
		{"m:ns.inner_app", "inner-app"},
	} {
		if got := pythonAppName(c.in); got != c.want {
			t.Errorf("pythonAppName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A Python replica's store is named in its environment, for its model
// loaders and its claim checks: S3 with the CA file (which implies TLS),
// or the directory of sluice dev.
func TestPythonRegistryEnv(t *testing.T) {
	t.Parallel()
	namer, err := streams.NewNamer("p")
	if err != nil {
		t.Fatal(err)
	}
	s3 := blob.S3Config{Endpoint: "127.0.0.1:9000", Bucket: "b", Prefix: "x", CAFile: "/etc/ca.pem"}
	env := pythonRegistryEnv([]string{"k:9092"}, namer, s3, "", "")
	for _, want := range []string{"SLUICE_S3_ENDPOINT=127.0.0.1:9000", "SLUICE_S3_BUCKET=b", "SLUICE_S3_PREFIX=x", "SLUICE_S3_TLS=true", "SLUICE_S3_CA_FILE=/etc/ca.pem"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %s", env, want)
		}
	}
	env = pythonRegistryEnv([]string{"k:9092"}, namer, blob.S3Config{}, "/tmp/blobs", "")
	if !slices.Contains(env, "SLUICE_BLOB_DIR=/tmp/blobs") || slices.ContainsFunc(env, func(e string) bool { return len(e) > 10 && e[:10] == "SLUICE_S3_" }) {
		t.Errorf("env %q: want SLUICE_BLOB_DIR and no SLUICE_S3_*", env)
	}
}
