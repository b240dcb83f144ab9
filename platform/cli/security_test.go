package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sluice-serve/sluice/gateway/certs/certstest"
)

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8000": true, "[::1]:8000": true, "localhost:8000": true, "127.0.0.2:1": true,
		":8000": false, "0.0.0.0:8000": false, "[::]:8000": false, "10.0.0.5:8000": false, "gateway.internal:8000": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// A /metrics listener (node, autoscaler, replica) serves without
// authentication: beyond loopback it warns that anyone who reaches it
// reads it; on loopback it says nothing.
func TestMetricsBeyondLoopbackWarns(t *testing.T) {
	t.Parallel()
	for addr, warns := range map[string]bool{"127.0.0.1:0": false, "0.0.0.0:0": true} {
		var buf strings.Builder
		_, stop, err := serveMetrics(addr, newProcessMetrics().reg, slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		stop()
		if got := strings.Contains(buf.String(), "serving /metrics without authentication"); got != warns {
			t.Errorf("%s: warned %v, want %v: %q", addr, got, warns, buf.String())
		}
	}
}

// A gateway or dev platform listening beyond loopback without
// authentication refuses to start, saying what to do; --insecure or an
// auth file lets it. Files that do not load refuse the start naming the
// file and why.
func TestSecureByDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", "localhost")
	_, otherKey := ca.Issue(t, dir, "other", "localhost")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gateway", "--http", ":0"}, "gateway: :0 is not a loopback address and no authentication is configured: give --auth-file or --jwks-file"},
		{[]string{"gateway", "--grpc", "0.0.0.0:0"}, "or pass --insecure"},
		{[]string{"dev", "--http", "[::]:0"}, "dev: [::]:0 is not a loopback address"},
		{[]string{"gateway", "--tls-cert", cert}, "given without its key file"},
		{[]string{"gateway", "--tls-cert", cert, "--tls-key", otherKey}, "private key does not match public key"},
		{[]string{"gateway", "--tls-cert", filepath.Join(dir, "gone.pem"), "--tls-key", key}, "gone.pem: no such file"},
		{[]string{"gateway", "--jwks-file", filepath.Join(dir, "jwks.json"), "--jwt-issuer", "i"}, "jwt audience: missing"},
		{[]string{"gateway", "--jwt-issuer", "i"}, "need --jwks-file"},
	} {
		_, _, err := runCLI(t, nil, tc.args...)
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sluice %s: %v (exit %d), want exit 2 with %q", strings.Join(tc.args, " "), err, ExitCode(err), tc.want)
		}
	}
	// Past the check, a gateway with --insecure or an auth file goes on
	// to the brokers (none given here).
	tokens := writeTemp(t, "tokens.yaml", "tokens: []\n")
	for _, args := range [][]string{
		{"gateway", "--http", ":0", "--grpc", ":0", "--insecure"},
		{"gateway", "--http", ":0", "--grpc", ":0", "--auth-file", tokens},
	} {
		_, _, err := runCLI(t, nil, args...)
		if err == nil || strings.Contains(err.Error(), "loopback") {
			t.Errorf("sluice %s: %v, want it past the exposure check", strings.Join(args, " "), err)
		}
	}
}

// `sluice dev` with --tls-cert and --auth-file: REST over https, gRPC
// over TLS on both ports, the CLI's client commands through an https://
// SLUICE_ADDR trusting SLUICE_CA_FILE with SLUICE_TOKEN; a client that
// does not trust the CA is refused; a certificate rotated under the
// running platform is served to new connections.
func TestDevTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform")
	}
	t.Parallel()
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", "127.0.0.1", "localhost")
	sum := sha256.Sum256([]byte("tok-admin"))
	tokens := writeTemp(t, "tokens.yaml", "tokens:\n  - name: admin\n    token_sha256: "+hex.EncodeToString(sum[:])+"\n    scopes: [admin]\n")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--builtin=false", "--blob-dir", t.TempDir(),
			"--tls-cert", cert, "--tls-key", key, "--auth-file", tokens},
			Env{Stdout: &out, Stderr: io.Discard, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev: %v", err)
		}
	}()
	ready := regexp.MustCompile(`REST on https://(\S+), gRPC on (\S+) `)
	var m []string
	for deadline := time.Now().Add(60 * time.Second); m == nil; time.Sleep(20 * time.Millisecond) {
		if m = ready.FindStringSubmatch(out.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("dev not ready: %q", out.String())
		}
	}
	restAddr, grpcAddr := m[1], m[2]
	vars := map[string]string{"SLUICE_ADDR": "https://" + restAddr, "SLUICE_CA_FILE": ca.File, "SLUICE_TOKEN": "tok-admin"}
	weights := writeTemp(t, "w.bin", "weights")
	for _, args := range [][]string{{"status"}, {"models", "push", "m", weights}, {"models", "ls"}} {
		if _, stderr, err := runCLI(t, vars, args...); err != nil {
			t.Fatalf("sluice %s over TLS: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	if _, _, err := runCLI(t, map[string]string{"SLUICE_ADDR": "https://" + restAddr, "SLUICE_TOKEN": "tok-admin"}, "status"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("status trusting only the system's CAs: %v, want a certificate error", err)
	}
	if _, _, err := runCLI(t, map[string]string{"SLUICE_ADDR": "http://" + restAddr, "SLUICE_TOKEN": "tok-admin"}, "status"); err == nil {
		t.Error("status in clear text to a TLS listener succeeded")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	// gRPC over TLS on both ports (grpc.health.v1 needs no token).
	for _, addr := range []string{restAddr, grpcAddr} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
		if err != nil {
			t.Fatal(err)
		}
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{})
		hcancel()
		conn.Close()
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health over TLS at %s: %v %v", addr, resp, err)
		}
	}

	// Rotate to a certificate of another CA: new connections get it.
	next := certstest.NewCA(t, dir, "next")
	cert2, key2 := next.Issue(t, t.TempDir(), "server", "127.0.0.1")
	for _, f := range [][2]string{{cert2, cert}, {key2, key}} {
		data, err := os.ReadFile(f[0])
		if err == nil {
			err = os.WriteFile(f[1]+".new", data, 0o600)
		}
		if err == nil {
			err = os.Rename(f[1]+".new", f[1])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	nextRoots := x509.NewCertPool()
	nextRoots.AddCert(next.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: nextRoots}, DisableKeepAlives: true}}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get("https://" + restAddr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated certificate was never served: %v", err)
		}
	}
	vars["SLUICE_CA_FILE"] = next.File
	if _, stderr, err := runCLI(t, vars, "status"); err != nil {
		t.Fatalf("status after rotation: %v\n%s", err, stderr)
	}
}
