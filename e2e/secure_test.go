package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-serve/sluice/gateway/auth/authtest"
	"github.com/sluice-serve/sluice/gateway/certs/certstest"
	"github.com/sluice-serve/sluice/platform/cli"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
)

// A `sluice gateway` with TLS (client certificates optional, checked
// against a client CA), the token file and a JWKS file: the CLI deploys
// over https with SLUICE_CA_FILE and a token of the file; a JWT holding
// infer calls the application over REST and over gRPC (Go clients with
// TLS); expired and wrong-audience JWTs are refused naming why; a client
// certificate of another CA is refused at the handshake; a JWT holding
// read only is refused the delete; `sluice audit` lists the deploy and
// the refused delete with their identities; then, under the running
// gateway, the certificate is rotated to another CA's and the key set
// loses its EC key: new gRPC connections get the new certificate and the
// EC-signed token is refused, an RSA one answered over REST.
func TestSecureGateway(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "gw")
	cert, key := ca.Issue(t, dir, "server", "127.0.0.1", "localhost")
	clientCA := certstest.NewCA(t, dir, "clients")
	stranger := certstest.NewCA(t, dir, "stranger")
	keys := authtest.NewKeys(t)
	jwks := filepath.Join(dir, "jwks.json")
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(jwks, keys.JWKS, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte(authFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	jwt := func(sub, scope string, exp time.Duration, aud string) string {
		return keys.EC.Mint(t, map[string]any{"iss": "https://idp.test", "aud": aud, "sub": sub, "scope": scope, "exp": time.Now().Add(exp).Unix()})
	}
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		done <- cli.Run(ctx, []string{"gateway", "--http", httpAddr, "--grpc", grpcAddr,
			"--brokers", strings.Join(plat.Brokers, ","), "--prefix", namer.Prefix(),
			"--auth-file", tokens, "--jwks-file", jwks, "--jwt-issuer", "https://idp.test", "--jwt-audience", "sluice-e2e",
			"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", clientCA.File, "--tls-client-auth", "optional"},
			cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry, Getenv: func(string) string { return "" }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway exit: %v", err)
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	rest := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, "https://"+httpAddr+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := rest("GET", "/v2/health/ready", "", ""); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway never answered over TLS")
		}
	}
	cliRun := func(token string, args ...string) (int, string) {
		var out bytes.Buffer
		vars := map[string]string{"SLUICE_ADDR": "https://" + httpAddr, "SLUICE_CA_FILE": ca.File, "SLUICE_TOKEN": token}
		err := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry,
			Getenv: func(k string) string { return vars[k] }})
		if err != nil {
			fmt.Fprintln(&out, err)
		}
		return cli.ExitCode(err), out.String()
	}
	spec := writeFile(t, "authtls.yaml", "name: authtls\nroute_prefix: /authtls\ningress: A\ndeployments:\n  - {name: A, handler: Tag, args: [a]}\n")
	if code, out := cliRun("secret-ci", "deploy", "-f", spec); code != 0 || !strings.Contains(out, "deployed authtls") {
		t.Fatalf("deploy over https with a token of the file: exit %d: %s", code, out)
	}
	defer cliRun("secret-admin", "delete", "authtls")

	infer := jwt("svc-caller", "openid infer:authtls", time.Hour, "sluice-e2e")
	if code, body := rest("POST", "/authtls", infer, "x"); code != 200 || body != "a[x]" {
		t.Errorf("REST with a JWT holding infer:authtls: %d %q", code, body)
	}
	for _, tc := range []struct{ name, token, want string }{
		{"expired", jwt("svc-caller", "infer", -time.Hour, "sluice-e2e"), "the token has expired"},
		{"wrong audience", jwt("svc-caller", "infer", time.Hour, "billing"), "audience is not accepted"},
		{"other key", keys.Other.Mint(t, map[string]any{"iss": "https://idp.test", "aud": "sluice-e2e", "sub": "x", "exp": time.Now().Add(time.Hour).Unix()}), "signature does not verify"},
	} {
		if code, body := rest("POST", "/authtls", tc.token, "x"); code != 401 || !strings.Contains(body, tc.want) {
			t.Errorf("%s JWT: %d %s, want 401 naming %q", tc.name, code, body, tc.want)
		}
	}

	// gRPC over TLS on both ports, with and without a client certificate
	// of the client CA; one of another CA is refused.
	good, err := tls.LoadX509KeyPair(clientCA.Issue(t, dir, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := tls.LoadX509KeyPair(stranger.Issue(t, dir, "mallory"))
	if err != nil {
		t.Fatal(err)
	}
	predict := func(addr string, cert *tls.Certificate) error {
		cfg := &tls.Config{RootCAs: roots}
		if cert != nil {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+infer), 10*time.Second)
		defer ccancel()
		resp, err := sluicev1.NewPredictClient(conn).Predict(cctx, &sluicev1.PredictRequest{App: "authtls", Payload: []byte("g")})
		if err == nil && string(resp.GetPayload()) != "a[g]" {
			err = fmt.Errorf("payload %q", resp.GetPayload())
		}
		return err
	}
	for _, addr := range []string{grpcAddr, httpAddr} {
		if err := predict(addr, nil); err != nil {
			t.Errorf("gRPC Predict over TLS at %s: %v", addr, err)
		}
		if err := predict(addr, &good); err != nil {
			t.Errorf("gRPC Predict over TLS at %s with a client certificate: %v", addr, err)
		}
		if err := predict(addr, &bad); err == nil {
			t.Errorf("gRPC Predict at %s with a client certificate of another CA passed", addr)
		}
	}

	// A refused delete, then the trail.
	if code, out := cliRun(jwt("reader-bot", "read", time.Hour, "sluice-e2e"), "delete", "authtls"); code == 0 || !strings.Contains(out, "token reader-bot lacks scope deploy") {
		t.Fatalf("delete with a read JWT: exit %d: %s", code, out)
	}
	admin := jwt("ops-admin", "admin", time.Hour, "sluice-e2e")
	if code, out := cliRun(infer, "audit"); code == 0 || !strings.Contains(out, "lacks scope admin") {
		t.Errorf("audit with an infer JWT: exit %d: %s", code, out)
	}
	var got string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, out := cliRun(admin, "audit", "--json", "-n", "1000")
		var list struct {
			Entries []struct{ Identity, Action, Target, Outcome string }
		}
		if code == 0 && json.Unmarshal([]byte(out), &list) == nil {
			var deployed, refused bool
			for _, e := range list.Entries {
				deployed = deployed || (e.Identity == "ci" && e.Action == "deploy" && e.Target == "apps authtls" && e.Outcome == "ok")
				refused = refused || (e.Identity == "reader-bot" && e.Action == "delete" && e.Target == "app authtls" && e.Outcome == "permission_denied")
			}
			if deployed && refused {
				break
			}
		}
		got = out
		if time.Now().After(deadline) {
			t.Fatalf("the audit trail lacks the deploy by ci or the refused delete by reader-bot:\n%s", got)
		}
	}
	if code, out := cliRun(admin, "audit"); code != 0 || !strings.Contains(out, "reader-bot") || !strings.Contains(out, "IDENTITY") {
		t.Errorf("sluice audit: exit %d:\n%s", code, out)
	}

	// Rotations under the running gateway: a certificate of another CA
	// served on the gRPC port to new connections; a key set without the
	// EC key refusing the tokens it signed.
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
	var set map[string][]map[string]string
	if err := json.Unmarshal(keys.JWKS, &set); err != nil {
		t.Fatal(err)
	}
	set["keys"] = set["keys"][:1] // the RSA key only
	data, _ := json.Marshal(set)
	if err := os.WriteFile(jwks+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(jwks+".new", jwks); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(next.Cert)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := predict(grpcAddr, nil)
		if err != nil && strings.Contains(err.Error(), "signing key (kid) is not in the key set") {
			break // the new certificate trusted, the EC token refused
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rotating the certificate and the key set: %v", err)
		}
	}
	rsaToken := keys.RSA.Mint(t, map[string]any{"iss": "https://idp.test", "aud": "sluice-e2e", "sub": "svc-caller", "scope": "infer", "exp": time.Now().Add(time.Hour).Unix()})
	client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if code, body := rest("POST", "/authtls", rsaToken, "y"); code != 200 || body != "a[y]" {
		t.Errorf("REST over the rotated certificate with an RSA JWT: %d %q", code, body)
	}
}
