package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/sluice-serve/sluice/gateway/audit"
	"github.com/sluice-serve/sluice/gateway/auth"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
)

// Every method of every gRPC service the platform serves beside the
// gateway has its scope in the one table: a new method without one
// fails here.
func TestEveryMethodHasAScope(t *testing.T) {
	t.Parallel()
	s := &Server{}
	srv := grpc.NewServer()
	s.Register(srv)
	registry.NewService(nil, GRPCError).Register(srv)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	n := 0
	for name, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			n++
			if _, ok := MethodScope("/" + name + "/" + m.Name); !ok {
				t.Errorf("gRPC method /%s/%s has no scope in the table (gateway/access.go)", name, m.Name)
			}
		}
	}
	if n < 30 {
		t.Fatalf("only %d methods enumerated", n)
	}
	// Every REST route registers through handle, which panics on a
	// route without an entry: building the handler checks them all.
	testServer(t, "").Handler(http.NotFoundHandler())
}

func sha(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// testServer is a gateway routing applications a (/a) and b (/b), with
// the tokens of testTokens when file is not "" (else no auth).
func testServer(t testing.TB, file string) *Server {
	s := &Server{cfg: Config{Log: slog.New(slog.DiscardHandler)}}
	if file != "" {
		path := filepath.Join(t.TempDir(), "tokens.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := auth.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		s.cfg.Auth = k
	}
	t1 := &appTable{byName: map[string]route{}}
	for _, app := range []string{"a", "b"} {
		r := route{prefix: "/" + app, app: app}
		t1.byName[app], t1.byPrefix = r, append(t1.byPrefix, r)
	}
	s.apps.Store(t1)
	return s
}

var testTokens = func() string {
	var b strings.Builder
	b.WriteString("tokens:\n")
	for _, e := range []struct{ name, scopes string }{
		{"infer", "infer"}, {"infer-a", "infer:a"}, {"read", "read"}, {"deploy", "deploy"},
		{"models", "models:write"}, {"admin", "admin"},
	} {
		b.WriteString("  - name: " + e.name + "\n    token_sha256: " + sha("tok-"+e.name) + "\n    scopes: [" + e.scopes + "]\n")
	}
	return b.String()
}()

// Over REST: no token or a wrong one is 401 with WWW-Authenticate, a
// token lacking the scope 403 naming it, the right scope passes; the
// health checks need nothing; infer:a reaches a's route and model only.
func TestRESTAccess(t *testing.T) {
	t.Parallel()
	s := testServer(t, testTokens)
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }
	for _, p := range []string{"GET /v2/health/ready", "POST /v2/models/{m}/infer", "GET /v2/models/{m}", "GET /metrics", "/"} {
		s.handle(mux, p, ok)
	}
	for _, tc := range []struct {
		method, path, token string
		want                int
		wantMsg             string
	}{
		{"GET", "/v2/health/ready", "", http.StatusTeapot, ""},
		{"POST", "/a", "", http.StatusUnauthorized, "bearer token is required"},
		{"POST", "/a", "Bearer nope", http.StatusUnauthorized, "not valid"},
		{"POST", "/a", "Basic dG9rLWFkbWlu", http.StatusUnauthorized, "not a bearer token"},
		{"POST", "/a", "Bearer tok-read", http.StatusForbidden, "token read lacks scope infer or infer:a, which POST /a needs"},
		{"POST", "/a", "Bearer tok-infer", http.StatusTeapot, ""},
		{"POST", "/a/sub", "bearer tok-infer-a", http.StatusTeapot, ""},
		{"POST", "/b", "Bearer tok-infer-a", http.StatusForbidden, "infer:b"},
		{"POST", "/nowhere", "Bearer tok-infer-a", http.StatusForbidden, "lacks scope infer,"},
		{"POST", "/v2/models/a/infer", "Bearer tok-infer-a", http.StatusTeapot, ""},
		{"POST", "/v2/models/b/infer", "Bearer tok-infer-a", http.StatusForbidden, "infer:b"},
		{"POST", "/v2/models/b/infer", "Bearer tok-admin", http.StatusTeapot, ""},
		{"GET", "/v2/models/a", "Bearer tok-infer-a", http.StatusForbidden, "lacks scope read"},
		{"GET", "/v2/models/a", "Bearer tok-read", http.StatusTeapot, ""},
		{"GET", "/metrics", "Bearer tok-deploy", http.StatusForbidden, "lacks scope read"},
		{"GET", "/metrics", "Bearer tok-read", http.StatusTeapot, ""},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token != "" {
			r.Header.Set("Authorization", tc.token)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.wantMsg) {
			t.Errorf("%s %s %q: %d %s, want %d with %q", tc.method, tc.path, tc.token, w.Code, w.Body, tc.want, tc.wantMsg)
		}
		if (w.Code == http.StatusUnauthorized) != (w.Header().Get("WWW-Authenticate") != "") {
			t.Errorf("%s %s %q: %d with WWW-Authenticate %q", tc.method, tc.path, tc.token, w.Code, w.Header().Get("WWW-Authenticate"))
		}
	}
	if s.denied.missing.Load() != 1 || s.denied.invalid.Load() != 2 || s.denied.scope.Load() != 6 {
		t.Errorf("denied: missing %d invalid %d scope %d, want 1 2 6", s.denied.missing.Load(), s.denied.invalid.Load(), s.denied.scope.Load())
	}
}

// Over gRPC, the interceptors: UNAUTHENTICATED, PERMISSION_DENIED, or
// the handler; an inference stream's target is checked on its message.
func TestGRPCAccess(t *testing.T) {
	t.Parallel()
	s := testServer(t, testTokens)
	called := func(context.Context, any) (any, error) { return "ran", nil }
	for _, tc := range []struct {
		method, token string
		req           any
		want          codes.Code
	}{
		{"/inference.GRPCInferenceService/ServerLive", "", nil, codes.OK},
		{"/sluice.v1.Applications/Deploy", "", nil, codes.Unauthenticated},
		{"/sluice.v1.Applications/Deploy", "Bearer wrong", nil, codes.Unauthenticated},
		{"/sluice.v1.Applications/Deploy", "Bearer tok-read", nil, codes.PermissionDenied},
		{"/sluice.v1.Applications/Deploy", "Bearer tok-deploy", nil, codes.OK},
		{"/sluice.v1.Applications/List", "Bearer tok-deploy", nil, codes.PermissionDenied},
		{"/sluice.v1.Applications/List", "Bearer tok-read", nil, codes.OK},
		{"/sluice.v1.Models/SetAlias", "Bearer tok-deploy", nil, codes.PermissionDenied},
		{"/sluice.v1.Models/SetAlias", "Bearer tok-models", nil, codes.OK},
		{"/sluice.v1.Models/SetAlias", "Bearer tok-admin", nil, codes.OK},
		{"/sluice.v1.Predict/Predict", "Bearer tok-infer-a", &sluicev1.PredictRequest{App: "a"}, codes.OK},
		{"/sluice.v1.Predict/Predict", "Bearer tok-infer-a", &sluicev1.PredictRequest{App: "b"}, codes.PermissionDenied},
		{"/inference.GRPCInferenceService/ModelInfer", "Bearer tok-infer-a", &inference.ModelInferRequest{ModelName: "a"}, codes.OK},
		{"/inference.GRPCInferenceService/ModelInfer", "Bearer tok-infer-a", &inference.ModelInferRequest{ModelName: "b"}, codes.PermissionDenied},
		{"/inference.GRPCInferenceService/ModelInfer", "Bearer tok-infer", &inference.ModelInferRequest{ModelName: "b"}, codes.OK},
		{"/made.up/Method", "Bearer tok-infer", nil, codes.PermissionDenied},
		{"/made.up/Method", "Bearer tok-admin", nil, codes.OK},
	} {
		ctx := context.Background()
		if tc.token != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", tc.token))
		}
		resp, err := s.unaryAuth(ctx, tc.req, &grpc.UnaryServerInfo{FullMethod: tc.method}, called)
		if status.Code(err) != tc.want || (err == nil) != (resp == "ran") {
			t.Errorf("%s %q %v: %v, %v; want %v", tc.method, tc.token, tc.req, resp, err, tc.want)
		}
	}
	for _, tc := range []struct {
		token, app string
		want       codes.Code
	}{
		{"", "a", codes.Unauthenticated},
		{"Bearer tok-read", "a", codes.PermissionDenied},
		{"Bearer tok-infer-a", "a", codes.OK},
		{"Bearer tok-infer-a", "b", codes.PermissionDenied},
		{"Bearer tok-infer", "b", codes.OK},
	} {
		ctx := context.Background()
		if tc.token != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", tc.token))
		}
		ss := &fakeStream{ctx: ctx, msg: &sluicev1.PredictRequest{App: tc.app}}
		err := s.streamAuth(nil, ss, &grpc.StreamServerInfo{FullMethod: "/sluice.v1.Predict/PredictStream", IsServerStream: true}, func(_ any, ss grpc.ServerStream) error {
			return ss.RecvMsg(new(sluicev1.PredictRequest))
		})
		if status.Code(err) != tc.want {
			t.Errorf("PredictStream %q to %s: %v, want %v", tc.token, tc.app, err, tc.want)
		}
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
	msg *sluicev1.PredictRequest
}

func (f *fakeStream) Context() context.Context { return f.ctx }
func (f *fakeStream) RecvMsg(m any) error {
	m.(*sluicev1.PredictRequest).App = f.msg.App
	return nil
}

// fakeTrail keeps the entries recorded.
type fakeTrail struct{ entries []audit.Entry }

func (f *fakeTrail) Record(_ context.Context, e audit.Entry) { f.entries = append(f.entries, e) }
func (f *fakeTrail) Latest(int) []audit.Entry                { return f.entries }

// Admin actions are logged and written to the trail with identity,
// action, target and outcome, granted or refused; other calls only when
// refused for their credential or scope, over gRPC and REST.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	s := testServer(t, testTokens)
	var logged strings.Builder
	s.cfg.Log = slog.New(slog.NewTextHandler(&logged, nil))
	trail := &fakeTrail{}
	s.cfg.Audit = trail
	ok := func(context.Context, any) (any, error) {
		return &sluicev1.DeployResponse{Deployed: []string{"shop"}}, nil
	}
	ctx := func(token string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", token))
	}
	_, _ = s.unaryAuth(ctx("Bearer tok-deploy"), &sluicev1.DeployRequest{FileName: "shop.yaml"}, &grpc.UnaryServerInfo{FullMethod: "/sluice.v1.Applications/Deploy"}, ok)
	_, _ = s.unaryAuth(ctx("Bearer tok-read"), &sluicev1.DeleteVersionRequest{Model: "m", Version: "3"}, &grpc.UnaryServerInfo{FullMethod: "/sluice.v1.Models/DeleteVersion"}, ok)
	_, _ = s.unaryAuth(ctx("Bearer tok-read"), &sluicev1.ListRequest{}, &grpc.UnaryServerInfo{FullMethod: "/sluice.v1.Applications/List"}, ok)
	_, _ = s.unaryAuth(ctx("Bearer nope"), &sluicev1.ListRequest{}, &grpc.UnaryServerInfo{FullMethod: "/sluice.v1.Applications/Get"}, ok)
	mux := http.NewServeMux()
	s.handle(mux, "POST /v2/models/{m}/infer", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/v2/models/iris/infer", strings.NewReader("{}")))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("REST inference without a token: %d, want 401", rec.Code)
	}
	for _, want := range []string{
		`level=INFO msg=audit identity=deploy action=deploy target="apps shop" method=/sluice.v1.Applications/Deploy outcome=ok`,
		`level=WARN msg=audit identity=read action=models.rm target="model m version 3" method=/sluice.v1.Models/DeleteVersion outcome=permission_denied`,
		`level=WARN msg=audit identity=anonymous action=/sluice.v1.Applications/Get target="" method=/sluice.v1.Applications/Get outcome=unauthenticated`,
		`level=WARN msg=audit identity=anonymous action="POST /v2/models/{m}/infer" target="POST /v2/models/iris/infer" method="POST /v2/models/{m}/infer" outcome=unauthenticated`,
	} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logged.String())
		}
	}
	if strings.Contains(logged.String(), "Applications/List") {
		t.Errorf("a granted read was audited:\n%s", logged.String())
	}
	want := []audit.Entry{
		{Identity: "deploy", Action: "deploy", Target: "apps shop", Outcome: "ok"},
		{Identity: "read", Action: "models.rm", Target: "model m version 3", Outcome: "permission_denied",
			Error: "token read lacks scope models:write, which /sluice.v1.Models/DeleteVersion needs"},
		{Identity: "anonymous", Action: "/sluice.v1.Applications/Get", Outcome: "unauthenticated", Error: "the bearer token is not valid"},
		{Identity: "anonymous", Action: "POST /v2/models/{m}/infer", Target: "POST /v2/models/iris/infer", Outcome: "unauthenticated",
			Error: "a bearer token is required (Authorization: Bearer <token>; the CLI reads SLUICE_TOKEN)"},
	}
	if !slices.Equal(trail.entries, want) {
		t.Errorf("trail %+v, want %+v", trail.entries, want)
	}
}

// Without an auth file every call passes, as before.
func TestNoAuthIsOpen(t *testing.T) {
	t.Parallel()
	s := testServer(t, "")
	if _, _, err := s.authorize("", "/sluice.v1.Applications/Delete", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.authorize("Bearer junk", "/made.up/Method", "", nil); err != nil {
		t.Fatal(err)
	}
}

// One authorisation check: a token holding infer:a calling a's route,
// with the test's 6 tokens in the file and with 100 (every entry is
// compared, in constant time).
func BenchmarkAuthorize(b *testing.B) {
	many := testTokens
	for i := range 94 {
		many += fmt.Sprintf("  - name: extra%d\n    token_sha256: %s\n    scopes: [read]\n", i, sha(fmt.Sprint("extra", i)))
	}
	for _, bc := range []struct {
		name, file string
	}{{"tokens=6", testTokens}, {"tokens=100", many}} {
		b.Run(bc.name, func(b *testing.B) {
			s := testServer(b, bc.file)
			app := func() string { rt, _ := s.byPath("/a/x"); return rt.app }
			for b.Loop() {
				if _, _, err := s.authorize("Bearer tok-infer-a", "/", "POST /a/x", app); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// GET /sluice/v1/audit lists the trail to admins: ?limit bounds it, a
// bad limit is 400, a gateway without a trail 412, other scopes 403.
func TestAuditREST(t *testing.T) {
	t.Parallel()
	s := testServer(t, testTokens)
	trail := &fakeTrail{entries: []audit.Entry{{Identity: "ci", Action: "deploy", Target: "apps shop", Outcome: "ok"}}}
	mux := http.NewServeMux()
	s.handle(mux, "GET /sluice/v1/audit", s.auditREST)
	get := func(path, token string) (int, string) {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if code, body := get("/sluice/v1/audit", "tok-admin"); code != http.StatusPreconditionFailed || !strings.Contains(body, "keeps no audit trail") {
		t.Errorf("without a trail: %d %s", code, body)
	}
	s.cfg.Audit = trail
	for _, tc := range []struct {
		path, token string
		want        int
		body        string
	}{
		{"/sluice/v1/audit", "tok-admin", http.StatusOK, `"identity":"ci"`},
		{"/sluice/v1/audit?limit=5", "tok-admin", http.StatusOK, `"target":"apps shop"`},
		{"/sluice/v1/audit?limit=x", "tok-admin", http.StatusBadRequest, `limit \"x\" is not a positive number`},
		{"/sluice/v1/audit?limit=0", "tok-admin", http.StatusBadRequest, "not a positive number"},
		{"/sluice/v1/audit", "tok-deploy", http.StatusForbidden, "lacks scope admin"},
		{"/sluice/v1/audit", "tok-read", http.StatusForbidden, "lacks scope admin"},
	} {
		if code, body := get(tc.path, tc.token); code != tc.want || !strings.Contains(body, tc.body) {
			t.Errorf("%s as %s: %d %s, want %d with %s", tc.path, tc.token, code, body, tc.want, tc.body)
		}
	}
}
