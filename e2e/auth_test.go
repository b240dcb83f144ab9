package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-serve/sluice/platform/cli"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
)

// authTokens are the tokens of the test's auth file: name, scopes.
var authTokens = [][2]string{
	{"hello", "infer:hello"}, {"infer", "infer"}, {"read", "read"}, {"deploy", "deploy"},
	{"models", "models:write"}, {"ci", "deploy, read"}, {"admin", "admin"},
}

func authFile(extra ...[2]string) string {
	var b strings.Builder
	b.WriteString("tokens:\n")
	for _, tk := range append(authTokens, extra...) {
		sum := sha256.Sum256([]byte("secret-" + tk[0]))
		fmt.Fprintf(&b, "  - name: %s\n    token_sha256: %s\n    scopes: [%s]\n", tk[0], hex.EncodeToString(sum[:]), tk[1])
	}
	return b.String()
}

// A `sluice gateway` with --auth-file: every kind of method, over REST
// and over gRPC, with no token and a wrong one (401 / UNAUTHENTICATED), a
// token lacking the scope (403 / PERMISSION_DENIED, naming it) and the
// right one; health stays open; the CLI deploys with SLUICE_TOKEN; the
// file reloads, and a bad reload keeps the tokens in force.
func TestAuthGateway(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(file, []byte(authFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		done <- cli.Run(ctx, []string{"gateway", "--http", httpAddr, "--grpc", grpcAddr,
			"--brokers", strings.Join(plat.Brokers, ","), "--prefix", namer.Prefix(), "--auth-file", file},
			cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry, Getenv: func(string) string { return "" }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway exit: %v", err)
		}
	}()
	gw := "http://" + httpAddr
	rest := func(method, path, token, body string) (int, string, http.Header) {
		req, _ := http.NewRequest(method, gw+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, body, _ := rest("POST", "/hello", "secret-admin", `{"language":"spanish","name":"Auth"}`); code == 200 && body == "Hola Auth" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway with auth never served hello to admin")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each call: the token holding the right scope and one lacking it.
	// A gRPC answer is counted as its HTTP kin: 401, 403, else 200.
	grpcStatus := func(err error) int {
		switch status.Code(err) {
		case codes.Unauthenticated:
			return 401
		case codes.PermissionDenied:
			return 403
		}
		return 200
	}
	withToken := func(token string) context.Context {
		if token == "" {
			return context.Background()
		}
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	}
	conn := grpcConn(t, grpcAddr)
	onHTTPPort := grpcConn(t, httpAddr)
	apps, models := sluicev1.NewApplicationsClient(conn), sluicev1.NewModelsClient(onHTTPPort)
	predict, oipc := sluicev1.NewPredictClient(conn), inference.NewGRPCInferenceServiceClient(conn)
	type call struct {
		name          string
		right, lacks  string // token names
		missing       string // the scope a 403 names
		do            func(token string) (int, string)
		open, success bool // success: the right token must get 200, not merely pass
	}
	restCall := func(method, path, body string) func(string) (int, string) {
		return func(token string) (int, string) {
			code, b, h := rest(method, path, token, body)
			if code == 401 && (h.Get("WWW-Authenticate") == "" || !strings.Contains(b, `"code":"unauthenticated"`)) {
				return 0, "401 without WWW-Authenticate or JSON code: " + b
			}
			return code, b
		}
	}
	rpc := func(f func(ctx context.Context) error) func(string) (int, string) {
		return func(token string) (int, string) {
			err := f(withToken(token))
			return grpcStatus(err), fmt.Sprint(err)
		}
	}
	calls := []call{
		{name: "REST app route", right: "hello", lacks: "read", missing: "infer:hello", success: true,
			do: restCall("POST", "/hello", `{"language":"spanish","name":"A"}`)},
		{name: "REST OIP infer", right: "infer", lacks: "hello", missing: "infer:doubler", success: true,
			do: restCall("POST", "/v2/models/doubler/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1],"data":[1]}]}`)},
		{name: "REST OIP metadata", right: "read", lacks: "infer", missing: "read", success: true, do: restCall("GET", "/v2/models/doubler", "")},
		{name: "REST OIP server metadata", right: "read", lacks: "deploy", missing: "read", success: true, do: restCall("GET", "/v2", "")},
		{name: "REST metrics", right: "read", lacks: "infer", missing: "read", success: true, do: restCall("GET", "/metrics", "")},
		{name: "REST apps list", right: "read", lacks: "deploy", missing: "read", success: true, do: restCall("GET", "/sluice/v1/apps", "")},
		{name: "REST predict", right: "hello", lacks: "read", missing: "infer:hello", success: true,
			do: restCall("POST", "/sluice/v1/predict/hello", `{"payload":"eyJsYW5ndWFnZSI6InNwYW5pc2giLCJuYW1lIjoiUCJ9"}`)},
		{name: "REST delete", right: "deploy", lacks: "read", missing: "deploy", do: restCall("DELETE", "/sluice/v1/apps/no-such-auth-app", "")},
		{name: "REST alias", right: "models", lacks: "deploy", missing: "models:write", do: restCall("PUT", "/sluice/v1/models/nope/aliases/prod", `{"version":"1"}`)},
		{name: "REST model list", right: "read", lacks: "models", missing: "read", success: true, do: restCall("GET", "/sluice/v1/models", "")},
		{name: "REST health", open: true, success: true, do: restCall("GET", "/v2/health/live", "")},
		{name: "gRPC Predict", right: "hello", lacks: "read", missing: "infer:hello", success: true, do: rpc(func(ctx context.Context) error {
			_, err := predict.Predict(ctx, &sluicev1.PredictRequest{App: "hello", Payload: []byte(`{"language":"spanish","name":"G"}`)})
			return err
		})},
		{name: "gRPC ModelInfer", right: "infer", lacks: "hello", missing: "infer:doubler", success: true, do: rpc(func(ctx context.Context) error {
			_, err := oipc.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "doubler",
				Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1},
					Contents: &inference.InferTensorContents{Fp32Contents: []float32{1}}}}})
			return err
		})},
		{name: "gRPC ModelMetadata", right: "read", lacks: "infer", missing: "read", success: true, do: rpc(func(ctx context.Context) error {
			_, err := oipc.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "doubler"})
			return err
		})},
		{name: "gRPC List", right: "read", lacks: "deploy", missing: "read", success: true, do: rpc(func(ctx context.Context) error {
			_, err := apps.List(ctx, &sluicev1.ListRequest{})
			return err
		})},
		{name: "gRPC Delete", right: "deploy", lacks: "read", missing: "deploy", do: rpc(func(ctx context.Context) error {
			_, err := apps.Delete(ctx, &sluicev1.DeleteRequest{Name: "no-such-auth-app"})
			return err
		})},
		{name: "gRPC SetAlias (HTTP port)", right: "models", lacks: "read", missing: "models:write", do: rpc(func(ctx context.Context) error {
			_, err := models.SetAlias(ctx, &sluicev1.SetAliasRequest{Model: "nope", Alias: "prod", Version: "1"})
			return err
		})},
		{name: "gRPC ListModels (HTTP port)", right: "read", lacks: "models", missing: "read", success: true, do: rpc(func(ctx context.Context) error {
			_, err := models.ListModels(ctx, &sluicev1.ListModelsRequest{})
			return err
		})},
		{name: "gRPC ServerLive", open: true, success: true, do: rpc(func(ctx context.Context) error {
			_, err := oipc.ServerLive(ctx, &inference.ServerLiveRequest{})
			return err
		})},
	}
	for _, c := range calls {
		if c.open {
			for _, token := range []string{"", "wrong"} {
				if code, body := c.do(token); code != 200 {
					t.Errorf("%s, token %q: %d %s, want 200: health is open", c.name, token, code, body)
				}
			}
			continue
		}
		for _, tc := range []struct {
			token   string
			want    int
			contain string
		}{
			{"", 401, "bearer token is required"},
			{"secret-wrong", 401, "not valid"},
			{"secret-" + c.lacks, 403, "lacks scope"},
		} {
			if code, body := c.do(tc.token); code != tc.want || !strings.Contains(body, tc.contain) {
				t.Errorf("%s, token %q: %d %s, want %d with %q", c.name, tc.token, code, body, tc.want, tc.contain)
			} else if tc.want == 403 && !strings.Contains(body, c.missing) {
				t.Errorf("%s, token %q: 403 %s does not name %s", c.name, tc.token, body, c.missing)
			}
		}
		for _, token := range []string{"secret-" + c.right, "secret-admin"} {
			code, body := c.do(token)
			if code == 401 || code == 403 || (c.success && code != 200) {
				t.Errorf("%s, token %q: %d %s, want it to pass", c.name, token, code, body)
			}
		}
	}

	// The CLI sends SLUICE_TOKEN, over REST (deploy, status, delete) and
	// gRPC (models).
	cliRun := func(token string, args ...string) (int, string) {
		var out bytes.Buffer
		err := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry,
			Getenv: func(k string) string {
				switch k {
				case "SLUICE_ADDR":
					return httpAddr
				case "SLUICE_TOKEN":
					return token
				}
				return ""
			}})
		if err != nil {
			fmt.Fprintln(&out, err)
		}
		return cli.ExitCode(err), out.String()
	}
	spec := writeFile(t, "authtags.yaml", "name: authtags\nroute_prefix: /authtags\ningress: A\ndeployments:\n  - {name: A, handler: Tag, args: [a]}\n")
	if code, out := cliRun("", "deploy", "-f", spec); code == 0 || !strings.Contains(out, "bearer token is required") {
		t.Fatalf("deploy without SLUICE_TOKEN: exit %d: %s", code, out)
	}
	if code, out := cliRun("secret-read", "deploy", "-f", spec); code == 0 || !strings.Contains(out, "lacks scope deploy") {
		t.Fatalf("deploy with a read token: exit %d: %s", code, out)
	}
	if code, out := cliRun("secret-ci", "deploy", "-f", spec); code != 0 || !strings.Contains(out, "deployed authtags") {
		t.Fatalf("deploy with SLUICE_TOKEN: exit %d: %s", code, out)
	}
	if code, body, _ := rest("POST", "/authtags", "secret-infer", "x"); code != 200 || body != "a[x]" {
		t.Errorf("authtags = %d %q", code, body)
	}
	if code, out := cliRun("secret-ci", "delete", "authtags"); code != 0 {
		t.Errorf("delete with SLUICE_TOKEN: exit %d: %s", code, out)
	}
	if code, out := cliRun("", "models", "ls"); code == 0 || !strings.Contains(out, "bearer token is required") {
		t.Errorf("models ls without SLUICE_TOKEN: exit %d: %s", code, out)
	}
	if code, out := cliRun("secret-read", "models", "ls"); code != 0 {
		t.Errorf("models ls with SLUICE_TOKEN: exit %d: %s", code, out)
	}

	// Denials are counted by reason.
	if code, body, _ := rest("GET", "/metrics", "secret-read", ""); code != 200 ||
		!strings.Contains(body, `sluice_gateway_auth_denied_total{reason="missing"}`) || strings.Contains(body, `sluice_gateway_auth_denied_total{reason="scope"} 0`) {
		t.Errorf("metrics: %d, want the denials counted:\n%s", code, body)
	}

	// A new token is in force after a reload; a file that does not parse
	// leaves the tokens in force.
	if err := os.WriteFile(file, []byte(authFile([2]string{"late", "read"})), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor := time.Now().Add(15 * time.Second)
	for {
		if code, _, _ := rest("GET", "/sluice/v1/apps", "secret-late", ""); code == 200 {
			break
		}
		if time.Now().After(waitFor) {
			t.Fatal("the token added to the file never worked")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := os.WriteFile(file, []byte("tokens:\n  - name: x\n    tokn: y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // past two polls
	if code, body, _ := rest("GET", "/sluice/v1/apps", "secret-late", ""); code != 200 {
		t.Errorf("after a bad reload: %d %s, want the tokens in force", code, body)
	}
}

// A token file that does not parse refuses to start, naming line and field.
func TestAuthFileRefusesToStart(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "bad.yaml", "tokens:\n  - name: a\n    token_sha256: abc\n    scopes: [read]\n")
	var out bytes.Buffer
	err := cli.Run(context.Background(), []string{"gateway", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--brokers", strings.Join(plat.Brokers, ","), "--auth-file", file},
		cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry, Getenv: func(string) string { return "" }})
	if cli.ExitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "bad.yaml:2: tokens[0].token_sha256") {
		t.Fatalf("exit %d: %v", cli.ExitCode(err), err)
	}
}
