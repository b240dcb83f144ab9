package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The S3 tests run against a real MinIO named by these variables
// (scripts/minio.sh starts one) and are skipped without them.
const (
	testEndpointEnv  = "SLUICE_TEST_S3_ENDPOINT"
	testAccessKeyEnv = "SLUICE_TEST_S3_ACCESS_KEY"
	testSecretKeyEnv = "SLUICE_TEST_S3_SECRET_KEY"
	// testCAFileEnv names the CA of a MinIO serving HTTPS (MINIO_TLS=1
	// scripts/minio.sh start prints it as S3_CA_FILE).
	testCAFileEnv = "SLUICE_TEST_S3_CA_FILE"
)

// s3TestConfig returns a config for a fresh bucket of the test MinIO, which
// is emptied and removed when tb ends; it skips tb without a MinIO.
func s3TestConfig(tb testing.TB) S3Config {
	tb.Helper()
	cfg := S3Config{
		Endpoint:  os.Getenv(testEndpointEnv),
		AccessKey: os.Getenv(testAccessKeyEnv),
		SecretKey: os.Getenv(testSecretKeyEnv),
		Bucket:    "sluice-test-" + strings.ToLower(rand.Text()[:16]),
		Prefix:    "store",
		CAFile:    os.Getenv(testCAFileEnv),
		TLS:       os.Getenv(testCAFileEnv) != "",
	}
	if cfg.Endpoint == "" || cfg.AccessKey == "" || cfg.SecretKey == "" {
		tb.Skipf("set %s, %s and %s to run against a real MinIO (eval \"$(scripts/minio.sh start)\" starts one)",
			testEndpointEnv, testAccessKeyEnv, testSecretKeyEnv)
	}
	tb.Cleanup(func() { removeBucket(tb, cfg) })
	return cfg
}

func rawClient(tb testing.TB, cfg S3Config) *minio.Client {
	tb.Helper()
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.TLS,
	}
	if cfg.CAFile != "" {
		tr, err := trustingTransport(cfg.CAFile)
		if err != nil {
			tb.Fatal(err)
		}
		opts.Transport = tr
	}
	c, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func removeBucket(tb testing.TB, cfg S3Config) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := rawClient(tb, cfg)
	if ok, err := c.BucketExists(ctx, cfg.Bucket); err != nil || !ok {
		return
	}
	for obj := range c.ListObjects(ctx, cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			tb.Errorf("cleanup: list %s: %v", cfg.Bucket, obj.Err)
			return
		}
		if err := c.RemoveObject(ctx, cfg.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			tb.Errorf("cleanup: remove %s/%s: %v", cfg.Bucket, obj.Key, err)
		}
	}
	if err := c.RemoveBucket(ctx, cfg.Bucket); err != nil {
		tb.Errorf("cleanup: remove bucket %s: %v", cfg.Bucket, err)
	}
}

func newTestS3(t *testing.T, cfg S3Config) *S3 {
	t.Helper()
	s, err := NewS3(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

// TestS3 runs the Store suite against MinIO, in a bucket of its own that
// NewS3 creates, with the default 16 MiB parts. Not parallel: testStore
// measures the heap first.
func TestS3(t *testing.T) {
	s := newTestS3(t, s3TestConfig(t))
	testStore(t, s)
}

// TestS3Layout checks where objects land in the bucket and that the SHA-256
// is recorded as x-amz-meta-sha256 for other S3 clients to see.
func TestS3Layout(t *testing.T) {
	t.Parallel()
	cfg := s3TestConfig(t)
	cfg.Prefix = "/models/prod/" // slashes around the prefix are trimmed
	s := newTestS3(t, cfg)
	ctx := t.Context()
	data := []byte("weights")
	mustPut(t, s, "m/v1/w.bin", data)

	c := rawClient(t, cfg)
	oi, err := c.StatObject(ctx, cfg.Bucket, "models/prod/m/v1/w.bin", minio.StatObjectOptions{})
	if err != nil {
		t.Fatalf("object is not at <Prefix>/<key>: %v", err)
	}
	if got := oi.Metadata.Get("X-Amz-Meta-Sha256"); got != sha256Hex(data) {
		t.Errorf("x-amz-meta-sha256 = %q, want %s", got, sha256Hex(data))
	}
	if oi.ContentType != contentType {
		t.Errorf("Content-Type = %q, want %s", oi.ContentType, contentType)
	}

	// An object put by another client (no sha256 metadata) is listed and
	// read with SHA256 "".
	if _, err := c.PutObject(ctx, cfg.Bucket, "models/prod/m/foreign", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "m/foreign")
	if err != nil || info.SHA256 != "" || info.Size != int64(len(data)) {
		t.Errorf("Stat(foreign) = %+v, %v; want size %d and no SHA256", info, err, len(data))
	}
	infos, err := s.List(ctx, "")
	if err != nil || len(infos) != 2 || infos[0].Key != "m/foreign" || infos[1].SHA256 != sha256Hex(data) {
		t.Errorf("List(\"\") = %+v, %v", infos, err)
	}
}

// TestNewS3ExistingBucket checks that NewS3 accepts a bucket that is there.
func TestNewS3ExistingBucket(t *testing.T) {
	t.Parallel()
	cfg := s3TestConfig(t)
	if err := rawClient(t, cfg).MakeBucket(t.Context(), cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	s := newTestS3(t, cfg)
	mustPut(t, s, "k", []byte("v"))
}

func TestNewS3BadCredentials(t *testing.T) {
	t.Parallel()
	cfg := s3TestConfig(t)
	cfg.SecretKey = "wrong-secret-" + rand.Text()
	_, err := NewS3(t.Context(), cfg, nil)
	if err == nil {
		t.Fatal("NewS3 with a wrong secret key succeeded")
	}
	if errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v: a refused login is not ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), cfg.SecretKey) {
		t.Errorf("error %q contains the secret key", err)
	}
}

// TestNewS3Unavailable checks that NewS3 gives up on an endpoint that does
// not answer within Timeout (+2 s), with ErrUnavailable naming the endpoint.
// It needs no MinIO.
func TestNewS3Unavailable(t *testing.T) {
	t.Parallel()
	closed := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	silent := func(t *testing.T) string {
		// Accepts connections and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
			}
		}()
		return ln.Addr().String()
	}
	tests := []struct {
		name     string
		endpoint func(*testing.T) string
	}{
		{"closed port", closed},
		{"silent server", silent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const timeout = time.Second
			cfg := S3Config{
				Endpoint:  tc.endpoint(t),
				AccessKey: "access",
				SecretKey: "secret-key-that-must-not-leak",
				Bucket:    "models",
				Timeout:   timeout,
			}
			start := time.Now()
			s, err := NewS3(t.Context(), cfg, nil)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("NewS3(%s) = %v, want an error", cfg.Endpoint, s)
			}
			t.Logf("NewS3 failed after %s: %v", elapsed.Round(time.Millisecond), err)
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), cfg.Endpoint) {
				t.Errorf("error %q does not name the endpoint %s", err, cfg.Endpoint)
			}
			if strings.Contains(err.Error(), cfg.SecretKey) {
				t.Errorf("error %q contains the secret key", err)
			}
			if elapsed > timeout+2*time.Second {
				t.Errorf("NewS3 took %s, want at most Timeout+2s = %s", elapsed, timeout+2*time.Second)
			}
		})
	}
}

func TestS3ConfigValidate(t *testing.T) {
	t.Parallel()
	valid := S3Config{Endpoint: "minio:9000", AccessKey: "ak", SecretKey: "sk", Bucket: "models"}
	noEnv := func(string) string { return "" }
	tests := []struct {
		name   string
		modify func(*S3Config)
		field  string // named in the error; "" for a valid config
	}{
		{"valid", func(*S3Config) {}, ""},
		{"valid with everything", func(c *S3Config) {
			c.Prefix, c.Region, c.TLS, c.PartSize, c.Timeout = "a/b", "eu-west-1", true, 64<<20, time.Minute
		}, ""},
		{"empty endpoint", func(c *S3Config) { c.Endpoint = "" }, "endpoint"},
		{"endpoint with scheme", func(c *S3Config) { c.Endpoint = "http://minio:9000" }, "endpoint"},
		{"endpoint with path", func(c *S3Config) { c.Endpoint = "minio:9000/x" }, "endpoint"},
		{"no access key", func(c *S3Config) { c.AccessKey = "" }, "access key"},
		{"no secret key", func(c *S3Config) { c.SecretKey = "" }, "secret key"},
		{"empty bucket", func(c *S3Config) { c.Bucket = "" }, "bucket"},
		{"bad bucket", func(c *S3Config) { c.Bucket = "Models_2" }, "bucket"},
		{"bad prefix", func(c *S3Config) { c.Prefix = "a//b" }, "prefix"},
		{"dot-dot prefix", func(c *S3Config) { c.Prefix = "a/../b" }, "prefix"},
		{"part size too small", func(c *S3Config) { c.PartSize = 1 << 20 }, "part size"},
		{"part size too large", func(c *S3Config) { c.PartSize = 6 << 30 }, "part size"},
		{"negative timeout", func(c *S3Config) { c.Timeout = -time.Second }, "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tc.modify(&cfg)
			err := cfg.resolve(noEnv).validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.field != "" && err == nil:
				t.Fatalf("validate accepted %v", cfg)
			case tc.field != "" && !strings.Contains(err.Error(), tc.field):
				t.Fatalf("validate: %q does not name %q", err, tc.field)
			}
		})
	}
}

func TestS3ConfigDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"SLUICE_S3_ACCESS_KEY":  "sluice-ak",
		"AWS_ACCESS_KEY_ID":     "aws-ak",
		"AWS_SECRET_ACCESS_KEY": "aws-sk",
	}
	got := S3Config{Endpoint: "e", Bucket: "b", Prefix: "/p/"}.resolve(func(k string) string { return env[k] })
	want := S3Config{Endpoint: "e", Bucket: "b", Prefix: "p", AccessKey: "sluice-ak", SecretKey: "aws-sk",
		PartSize: 16 << 20, Timeout: 10 * time.Second}
	if got != want {
		t.Errorf("resolve = %#v\nwant %#v", got.rawString(), want.rawString())
	}
	explicit := S3Config{AccessKey: "mine", SecretKey: "mine-too"}.resolve(func(k string) string { return env[k] })
	if explicit.AccessKey != "mine" || explicit.SecretKey != "mine-too" {
		t.Errorf("environment overrode explicit credentials: %s", explicit.rawString())
	}
}

// Credentials from files (a mounted Secret): used when the variables
// naming the keys themselves are unset, ahead of AWS's, trailing white
// space dropped; a file that cannot be read is an error naming its
// variable, not an empty key.
func TestS3ConfigCredentialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ak, sk := filepath.Join(dir, "ak"), filepath.Join(dir, "sk")
	if err := os.WriteFile(ak, []byte("file-ak\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sk, []byte("file-sk\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLUICE_S3_ACCESS_KEY_FILE": ak, "SLUICE_S3_SECRET_KEY_FILE": sk, "AWS_ACCESS_KEY_ID": "aws-ak"}
	c := S3Config{Endpoint: "e", Bucket: "bucket"}.resolve(func(k string) string { return env[k] })
	if c.AccessKey != "file-ak" || c.SecretKey != "file-sk" {
		t.Errorf("keys from files: %s", c.rawString())
	}
	if err := c.validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	env["SLUICE_S3_ACCESS_KEY"] = "env-ak"
	if c := (S3Config{}).resolve(func(k string) string { return env[k] }); c.AccessKey != "env-ak" {
		t.Errorf("SLUICE_S3_ACCESS_KEY should win over the file: %s", c.rawString())
	}
	env["SLUICE_S3_SECRET_KEY_FILE"] = filepath.Join(dir, "missing")
	err := S3Config{Endpoint: "e", Bucket: "bucket"}.resolve(func(k string) string { return env[k] }).validate()
	if err == nil || !strings.Contains(err.Error(), "$SLUICE_S3_SECRET_KEY_FILE") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("an unreadable key file: %v, want an error naming the variable and the file", err)
	}
}

// TestS3ConfigEnvFallback is not parallel: it sets the process environment.
func TestS3ConfigEnvFallback(t *testing.T) {
	cfg := S3Config{Endpoint: "minio:9000", Bucket: "models"}
	t.Setenv("SLUICE_S3_ACCESS_KEY", "")
	t.Setenv("SLUICE_S3_SECRET_KEY", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "access key") {
		t.Fatalf("Validate without credentials = %v, want an access key error", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "aws-ak")
	t.Setenv("SLUICE_S3_SECRET_KEY", "sluice-sk")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate with credentials in the environment: %v", err)
	}
}

// rawString shows every field, credentials included, for test failures.
func (c S3Config) rawString() string {
	type plain S3Config
	return fmt.Sprintf("%+v", plain(c))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestS3ConfigRedactsSecret formats and logs a config every usual way and
// checks the credentials never show.
func TestS3ConfigRedactsSecret(t *testing.T) {
	t.Parallel()
	const (
		access = "AKIA-ACCESS-KEY-7731"
		secret = "s3cr3t-Value/With+Chars=9"
	)
	cfg := S3Config{Endpoint: "minio.internal:9000", AccessKey: access, SecretKey: secret, Bucket: "models", Prefix: "p"}
	type parent struct {
		Name string
		S3   S3Config
		Ptr  *S3Config
	}
	var textLog, jsonLog bytes.Buffer
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "s3", cfg, "ptr", &cfg)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", slog.Any("s3", cfg), "parent", parent{S3: cfg, Ptr: &cfg})
	badBucket := cfg
	badBucket.Bucket = "Bad_Bucket"
	outputs := map[string]string{
		"Sprint":        fmt.Sprint(cfg),
		"%v":            fmt.Sprintf("%v", cfg),
		"%+v":           fmt.Sprintf("%+v", cfg),
		"%#v":           fmt.Sprintf("%#v", cfg),
		"%s":            fmt.Sprintf("%s", cfg),
		"%q":            fmt.Sprintf("%q", cfg),
		"%v pointer":    fmt.Sprintf("%v", &cfg),
		"%+v pointer":   fmt.Sprintf("%+v", &cfg),
		"%+v nested":    fmt.Sprintf("%+v", parent{Name: "x", S3: cfg, Ptr: &cfg}),
		"%#v nested":    fmt.Sprintf("%#v", parent{Name: "x", S3: cfg, Ptr: &cfg}),
		"%v slice":      fmt.Sprintf("%v", []S3Config{cfg}),
		"json":          string(must(json.Marshal(parent{S3: cfg, Ptr: &cfg}))),
		"slog text":     textLog.String(),
		"slog json":     jsonLog.String(),
		"Validate err":  fmt.Sprint(badBucket.Validate()),
		"Validate err2": fmt.Sprint(S3Config{SecretKey: secret}.Validate()),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, access) {
			t.Errorf("%s shows a credential: %s", name, out)
		}
	}
	if out := outputs["%+v"]; !strings.Contains(out, "minio.internal:9000") || !strings.Contains(out, redacted) {
		t.Errorf("%%+v = %s, want the endpoint and %s", out, redacted)
	}
	var logged struct {
		S3 map[string]any `json:"s3"`
	}
	if err := json.Unmarshal(jsonLog.Bytes(), &logged); err != nil || logged.S3["secret_key"] != redacted || logged.S3["bucket"] != "models" {
		t.Errorf("JSON log = %s (%v), want a group with secret_key %s", jsonLog.String(), err, redacted)
	}
}

// BenchmarkS3PutGet512MiB pushes and pulls a 512 MiB object through the S3
// Store and, in the same run, through plain minio-go PutObject/GetObject
// with the same part size and bytes, and reports MB/s for each and the
// Store/plain ratios. The bytes are generated as they are sent.
func BenchmarkS3PutGet512MiB(b *testing.B) {
	const (
		n    = 512 * mib
		seed = 512
	)
	cfg := s3TestConfig(b)
	ctx := b.Context()
	s, err := NewS3(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	raw := rawClient(b, cfg)
	want := sha256Of(b, genData(seed, n))
	// A sink without ReadFrom, so both sides are drained the same way.
	sink := struct{ io.Writer }{io.Discard}
	buf := make([]byte, mib)

	var storePut, storeGet, rawPut, rawGet time.Duration
	iters := 0
	for b.Loop() {
		iters++
		start := time.Now()
		info, err := s.Put(ctx, "bench/object", genData(seed, n), n)
		storePut += time.Since(start)
		if err != nil {
			b.Fatalf("Store Put: %v", err)
		}
		if info.SHA256 != want {
			b.Fatalf("Store Put: SHA256 %s, want %s", info.SHA256, want)
		}

		start = time.Now()
		_, err = raw.PutObject(ctx, cfg.Bucket, "raw/object", genData(seed, n), n,
			minio.PutObjectOptions{PartSize: defaultPartSize, ContentType: contentType})
		rawPut += time.Since(start)
		if err != nil {
			b.Fatalf("minio-go PutObject: %v", err)
		}

		start = time.Now()
		rc, info, err := s.Get(ctx, "bench/object")
		if err != nil {
			b.Fatalf("Store Get: %v", err)
		}
		got, err := io.CopyBuffer(sink, rc, buf)
		rc.Close()
		storeGet += time.Since(start)
		if err != nil || got != n || info.SHA256 != want {
			b.Fatalf("Store Get: read %d bytes (SHA256 %s), %v", got, info.SHA256, err)
		}

		start = time.Now()
		obj, err := raw.GetObject(ctx, cfg.Bucket, "raw/object", minio.GetObjectOptions{})
		if err != nil {
			b.Fatalf("minio-go GetObject: %v", err)
		}
		got, err = io.CopyBuffer(sink, obj, buf)
		obj.Close()
		rawGet += time.Since(start)
		if err != nil || got != n {
			b.Fatalf("minio-go GetObject: read %d bytes, %v", got, err)
		}
	}
	mbps := func(d time.Duration) float64 { return float64(n) * float64(iters) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(storePut), "store-put-MB/s")
	b.ReportMetric(mbps(rawPut), "minio-put-MB/s")
	b.ReportMetric(mbps(storeGet), "store-get-MB/s")
	b.ReportMetric(mbps(rawGet), "minio-get-MB/s")
	b.ReportMetric(mbps(storePut)/mbps(rawPut), "put-ratio")
	b.ReportMetric(mbps(storeGet)/mbps(rawGet), "get-ratio")
}

// TestS3TLS runs against a MinIO serving HTTPS with its own CA: the store
// trusting that CA (CAFile) puts and gets an object; one trusting only
// the system's CAs fails naming the certificate; a CA file that is not
// there fails naming it.
func TestS3TLS(t *testing.T) {
	cfg := s3TestConfig(t)
	if cfg.CAFile == "" {
		t.Skipf("set %s to a MinIO's CA (MINIO_TLS=1 scripts/minio.sh start)", testCAFileEnv)
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := NewS3(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	if _, err := s.Put(ctx, "tls/object", strings.NewReader("over https"), -1); err != nil {
		t.Fatalf("put over TLS: %v", err)
	}
	rc, _, err := s.Get(ctx, "tls/object")
	if err != nil {
		t.Fatalf("get over TLS: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "over https" {
		t.Fatalf("got %q back", b)
	}
	system := cfg
	system.CAFile, system.Timeout = "", 5*time.Second
	if _, err := NewS3(ctx, system, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("trusting the system's CAs only: %v, want a certificate error", err)
	}
	missing := cfg
	missing.CAFile = filepath.Join(t.TempDir(), "none.pem")
	if _, err := NewS3(ctx, missing, nil); err == nil || !strings.Contains(err.Error(), "none.pem") {
		t.Fatalf("a missing CA file: %v", err)
	}
}
