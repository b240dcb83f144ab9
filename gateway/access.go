package gateway

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-serve/sluice/gateway/audit"
	"github.com/sluice-serve/sluice/gateway/auth"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/streams"
)

// Authentication and authorisation. With Config.Auth set, every call
// but the health checks carries a bearer token (REST: Authorization:
// Bearer; gRPC: the authorization metadata) whose identity must hold the
// scope its method needs. Sluice's own REST API goes through
// grpc-gateway, which forwards the Authorization header as the
// authorization metadata: it is checked once, on the gRPC side.

// scopes is the one table of what each method needs: every gRPC method
// of every service served beside the gateway (by full method name) and
// every REST route of the gateway (by its ServeMux pattern). A gRPC
// method not in it needs admin; a REST route not in it panics at
// construction; TestEveryMethodHasAScope enumerates the server's services.
// Methods needing deploy or models:write are the admin actions, audited.
var scopes = map[string]auth.Scope{
	// OIP over gRPC.
	"/inference.GRPCInferenceService/ServerLive":      auth.Open,
	"/inference.GRPCInferenceService/ServerReady":     auth.Open,
	"/inference.GRPCInferenceService/ServerMetadata":  auth.Read,
	"/inference.GRPCInferenceService/ModelReady":      auth.Read,
	"/inference.GRPCInferenceService/ModelMetadata":   auth.Read,
	"/inference.GRPCInferenceService/ModelConfig":     auth.Read,
	"/inference.GRPCInferenceService/ModelStatistics": auth.Read,
	"/inference.GRPCInferenceService/RepositoryIndex": auth.Read,
	"/inference.GRPCInferenceService/ModelInfer":      auth.Infer,
	// Sluice's API (REST under /sluice/v1 through grpc-gateway too).
	"/sluice.v1.Predict/Predict":                                     auth.Infer,
	"/sluice.v1.Predict/PredictStream":                               auth.Infer,
	"/sluice.v1.Applications/Deploy":                                 auth.Deploy,
	"/sluice.v1.Applications/Delete":                                 auth.Deploy,
	"/sluice.v1.Applications/List":                                   auth.Read,
	"/sluice.v1.Applications/Get":                                    auth.Read,
	"/sluice.v1.Models/PushVersion":                                  auth.ModelsWrite,
	"/sluice.v1.Models/SetAlias":                                     auth.ModelsWrite,
	"/sluice.v1.Models/DeleteVersion":                                auth.ModelsWrite,
	"/sluice.v1.Models/ListModels":                                   auth.Read,
	"/sluice.v1.Models/GetModel":                                     auth.Read,
	"/sluice.v1.Models/GetVersion":                                   auth.Read,
	"/sluice.v1.Models/PullVersion":                                  auth.Read,
	"/sluice.v1.Code/PushBundle":                                     auth.ModelsWrite,
	"/sluice.v1.Code/SetBundleAlias":                                 auth.ModelsWrite,
	"/sluice.v1.Code/DeleteBundleVersion":                            auth.ModelsWrite,
	"/sluice.v1.Code/ListBundles":                                    auth.Read,
	"/sluice.v1.Code/GetBundle":                                      auth.Read,
	"/sluice.v1.Code/GetBundleVersion":                               auth.Read,
	"/sluice.v1.Code/PullBundle":                                     auth.Read,
	"/grpc.health.v1.Health/Check":                                   auth.Open,
	"/grpc.health.v1.Health/Watch":                                   auth.Open,
	"/grpc.health.v1.Health/List":                                    auth.Open,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      auth.Read,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": auth.Read,
	// REST: OIP, metrics, application routes.
	"GET /v2/health/live":                    auth.Open,
	"GET /v2/health/ready":                   auth.Open,
	"/v2":                                    auth.Read, // server metadata
	"GET /v2/models/{m}":                     auth.Read,
	"GET /v2/models/{m}/versions/{v}":        auth.Read,
	"GET /v2/models/{m}/ready":               auth.Read,
	"GET /v2/models/{m}/versions/{v}/ready":  auth.Read,
	"POST /v2/models/{m}/infer":              auth.Infer,
	"POST /v2/models/{m}/versions/{v}/infer": auth.Infer,
	"/v2/models/{m}/infer":                   auth.Infer, // 405: inference takes POST
	"/v2/models/{m}/versions/{v}/infer":      auth.Infer,
	"POST /v2/repository/index":              auth.Read,
	"GET /v2/models/stats":                   auth.Read,
	"GET /v2/models/{m}/stats":               auth.Read,
	"GET /v2/models/{m}/versions/{v}/stats":  auth.Read,
	"GET /v2/models/{m}/config":              auth.Read,
	"GET /v2/models/{m}/versions/{v}/config": auth.Read,
	"/v2/":                                   auth.Read, // 404 under /v2
	"GET /metrics":                           auth.Read,
	// The audit trail: who deployed, deleted, pushed what.
	"GET /sluice/v1/audit": auth.Admin,
	"GET /metrics/targets": auth.Read, // Prometheus service discovery of replica processes
	// The description of the API, the same for every installation
	// (generated from protos/, public with the source): open, so that
	// tools read it before they hold a token.
	"GET /sluice/v1/openapi.json": auth.Open,
	// The dashboard's page and files (ui.go), the same everywhere: open;
	// the state it draws needs read.
	"GET /ui":                 auth.Open,
	"GET /ui/":                auth.Open,
	"GET /sluice/v1/ui/state": auth.Read,
	"/":                       auth.Infer, // application routes
}

// MethodScope is the scope a gRPC method (full name) or REST route
// (pattern) needs; ok is false when the table has no entry.
func MethodScope(method string) (scope auth.Scope, ok bool) {
	scope, ok = scopes[method]
	return scope, ok
}

// audited are the admin actions: written to the log and the audit trail
// with the identity, the target and the outcome.
func audited(s auth.Scope) bool { return s == auth.Deploy || s == auth.ModelsWrite }

// refused reports whether err refused a call for its credential or its
// scope (401, 403): every such refusal is audited, whatever the call.
func refused(err error) bool {
	if err == nil {
		return false
	}
	c := streams.CodeOf(err)
	if st, ok := status.FromError(err); ok {
		c = codeOf(st.Code())
	}
	return c == streams.CodeUnauthenticated || c == streams.CodePermissionDenied
}

// Denial reasons, the reason label of sluice_gateway_auth_denied_total.
const (
	deniedMissing = "missing" // no credential
	deniedInvalid = "invalid" // a credential no token matches, or not a bearer token
	deniedScope   = "scope"   // the identity lacks the scope
)

type authCounters struct{ missing, invalid, scope atomic.Uint64 }

func (c *authCounters) count(reason string) {
	switch reason {
	case deniedMissing:
		c.missing.Add(1)
	case deniedInvalid:
		c.invalid.Add(1)
	default:
		c.scope.Add(1)
	}
}

// authOn reports whether calls must carry a credential.
func (s *Server) authOn() bool { return s.cfg.Auth != nil || s.cfg.JWT != nil }

// authenticate finds the identity behind an Authorization value; with
// no auth configured every caller is anonymous (nil) and allowed. A
// bearer shaped like a JWT is verified as one when a key set is
// configured; any other goes through the token file.
func (s *Server) authenticate(credential string) (*auth.Identity, error) {
	if !s.authOn() {
		return nil, nil
	}
	if credential == "" {
		s.denied.count(deniedMissing)
		return nil, streams.Errorf(streams.CodeUnauthenticated, "a bearer token is required (Authorization: Bearer <token>; the CLI reads SLUICE_TOKEN)")
	}
	scheme, token, _ := strings.Cut(credential, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "bearer") || token == "" {
		s.denied.count(deniedInvalid)
		return nil, streams.Errorf(streams.CodeUnauthenticated, "the credential is not a bearer token (Authorization: Bearer <token>)")
	}
	if s.cfg.JWT != nil && auth.LooksLikeJWT(token) {
		id, err := s.cfg.JWT.Verify(token)
		if err != nil {
			s.denied.count(deniedInvalid)
			return nil, streams.Errorf(streams.CodeUnauthenticated, "the bearer token is not valid: %v", err)
		}
		return id, nil
	}
	if s.cfg.Auth == nil {
		s.denied.count(deniedInvalid)
		return nil, streams.Errorf(streams.CodeUnauthenticated, "the bearer token is not valid: this gateway accepts JWTs only")
	}
	id, ok := s.cfg.Auth.Tokens().Authenticate(token)
	if !ok {
		s.denied.count(deniedInvalid)
		return nil, streams.Errorf(streams.CodeUnauthenticated, "the bearer token is not valid")
	}
	return id, nil
}

// permit checks that id may make a call needing scope; app is the
// application an inference reaches ("" when none known).
func (s *Server) permit(id *auth.Identity, what string, need auth.Scope, app string) error {
	if !s.authOn() || id.Allows(need, app) {
		return nil
	}
	s.denied.count(deniedScope)
	missing := string(need)
	if need == auth.Infer && app != "" {
		missing = "infer or infer:" + app
	}
	return streams.Errorf(streams.CodePermissionDenied, "token %s lacks scope %s, which %s needs", id.Name, missing, what)
}

// identify authenticates a call to method when it needs a scope: id is
// nil when it needs none, or no auth is configured.
func (s *Server) identify(credential, method string) (id *auth.Identity, need auth.Scope, err error) {
	need, ok := scopes[method]
	if !ok {
		need = auth.Admin // a method nobody gave a scope: admins only
	}
	if need == auth.Open || !s.authOn() {
		return nil, need, nil
	}
	id, err = s.authenticate(credential)
	return id, need, err
}

// authorize is one whole check of a call to method (a table key),
// which a 403 calls what: the credential's identity, and its scope. app
// names an inference's target; it is called only when that matters (the
// identity lacks infer).
func (s *Server) authorize(credential, method, what string, app func() string) (*auth.Identity, auth.Scope, error) {
	id, need, err := s.identify(credential, method)
	if err != nil || id == nil {
		return id, need, err
	}
	target := ""
	if need == auth.Infer && !id.Allows(auth.Infer, "") {
		target = app()
	}
	return id, need, s.permit(id, what, need, target)
}

// appOfModel is the application serving an OIP model name ("" when none).
func (s *Server) appOfModel(model, version string) string {
	if rt, ok := s.byName(model); ok {
		return rt.app
	}
	if _, ma, err := s.registryModel(model, version); err == nil {
		return ma.app
	}
	return ""
}

// handle registers a REST route with the check its table entry names.
func (s *Server) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	need, ok := scopes[pattern]
	if !ok {
		panic(fmt.Sprintf("gateway: REST route %q has no entry in the scopes table", pattern))
	}
	if need == auth.Open {
		mux.HandleFunc(pattern, h)
		return
	}
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !s.authOn() {
			h(w, r)
			return
		}
		id, need, err := s.authorize(r.Header.Get("Authorization"), pattern, r.Method+" "+r.URL.Path, func() string {
			if m := r.PathValue("m"); m != "" {
				return s.appOfModel(m, r.PathValue("v"))
			}
			rt, _ := s.byPath(r.URL.Path)
			return rt.app
		})
		if err != nil {
			s.audit(r.Context(), id, pattern, need, r.Method+" "+r.URL.Path, err)
			writeError(w, err)
			return
		}
		h(w, r)
	})
}

// credential is the authorization metadata of a gRPC call.
func credential(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// appOfRequest is the application an inference request reaches.
func (s *Server) appOfRequest(req any) string {
	switch r := req.(type) {
	case interface{ GetModelName() string }: // OIP ModelInfer
		v := ""
		if rv, ok := req.(interface{ GetModelVersion() string }); ok {
			v = rv.GetModelVersion()
		}
		return s.appOfModel(r.GetModelName(), v)
	case interface{ GetApp() string }: // Predict
		if rt, ok := s.byName(r.GetApp()); ok {
			return rt.app
		}
	}
	return ""
}

// unaryAuth checks every unary call, and audits the admin actions.
func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id, need, err := s.authorize(credential(ctx), info.FullMethod, info.FullMethod, func() string { return s.appOfRequest(req) })
	if err == nil {
		var resp any
		resp, err = handler(ctx, req)
		s.audit(ctx, id, info.FullMethod, need, auditTarget(req, resp), err)
		return resp, err
	}
	s.audit(ctx, id, info.FullMethod, need, auditTarget(req, nil), err)
	return nil, grpcError(ctx, err)
}

// streamAuth checks every streaming call. An inference stream's target
// is in its first message: a caller holding only infer:<app> is checked
// when the handler receives it.
func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	id, need, err := s.identify(credential(ctx), info.FullMethod)
	if err == nil && id != nil {
		if need == auth.Infer && !id.Allows(auth.Infer, "") {
			ss = &inferStream{ServerStream: ss, s: s, id: id, method: info.FullMethod}
		} else {
			err = s.permit(id, info.FullMethod, need, "")
		}
	}
	if err == nil {
		var first *firstMessage
		if audited(need) {
			first = &firstMessage{ServerStream: ss}
			ss = first
		}
		err = handler(srv, ss)
		s.audit(ctx, id, info.FullMethod, need, first.target(), err)
		return err
	}
	s.audit(ctx, id, info.FullMethod, need, "", err)
	return grpcError(ctx, err)
}

// inferStream checks the first message of an inference stream against
// an identity allowed inference on some applications only.
type inferStream struct {
	grpc.ServerStream
	s       *Server
	id      *auth.Identity
	method  string
	checked bool
}

func (x *inferStream) RecvMsg(m any) error {
	if err := x.ServerStream.RecvMsg(m); err != nil || x.checked {
		return err
	}
	x.checked = true
	if err := x.s.permit(x.id, x.method, auth.Infer, x.s.appOfRequest(m)); err != nil {
		return grpcError(x.Context(), err)
	}
	return nil
}

// firstMessage keeps the first message of an audited stream (a push's
// header names what it pushes).
type firstMessage struct {
	grpc.ServerStream
	msg any
}

func (x *firstMessage) RecvMsg(m any) error {
	err := x.ServerStream.RecvMsg(m)
	if err == nil && x.msg == nil {
		x.msg = m
	}
	return err
}

func (x *firstMessage) target() string {
	if x == nil {
		return ""
	}
	return auditTarget(x.msg, nil)
}

// actions name the admin actions in the audit trail.
var actions = map[string]string{
	"/sluice.v1.Applications/Deploy":      "deploy",
	"/sluice.v1.Applications/Delete":      "delete",
	"/sluice.v1.Models/PushVersion":       "models.push",
	"/sluice.v1.Models/SetAlias":          "models.alias",
	"/sluice.v1.Models/DeleteVersion":     "models.rm",
	"/sluice.v1.Code/PushBundle":          "code.push",
	"/sluice.v1.Code/SetBundleAlias":      "code.alias",
	"/sluice.v1.Code/DeleteBundleVersion": "code.rm",
}

// auditTarget names what an admin request acts on; resp, when the call
// succeeded, names what a deploy applied.
func auditTarget(req, resp any) string {
	version := func(v string) string {
		if v == "" {
			return ""
		}
		return " version " + v
	}
	switch r := req.(type) {
	case *sluicev1.DeployRequest:
		if d, ok := resp.(*sluicev1.DeployResponse); ok && len(d.GetDeployed()) > 0 {
			return "apps " + strings.Join(d.GetDeployed(), ",")
		}
		return "file " + r.GetFileName()
	case *sluicev1.DeleteRequest:
		return "app " + r.GetName()
	case *sluicev1.PushVersionRequest:
		h := r.GetHeader()
		return "model " + h.GetModel() + version(h.GetVersion())
	case *sluicev1.SetAliasRequest:
		return "model " + r.GetModel() + " alias " + r.GetAlias() + " to version " + r.GetVersion()
	case *sluicev1.DeleteVersionRequest:
		return "model " + r.GetModel() + version(r.GetVersion())
	case *sluicev1.PushBundleRequest:
		return "bundle " + r.GetHeader().GetName()
	case *sluicev1.SetBundleAliasRequest:
		return "bundle " + r.GetName() + " alias " + r.GetAlias() + " to version " + r.GetVersion()
	case *sluicev1.DeleteBundleVersionRequest:
		return "bundle " + r.GetName() + version(r.GetVersion())
	}
	return ""
}

// audit writes an admin action, and any call refused for its credential
// or scope, with its identity, target and outcome to the log and, when
// the gateway has one, the audit trail.
func (s *Server) audit(ctx context.Context, id *auth.Identity, method string, need auth.Scope, target string, err error) {
	if !audited(need) && !refused(err) {
		return
	}
	who := "anonymous"
	if id != nil {
		who = id.Name
	}
	outcome := "ok"
	if st, ok := status.FromError(err); ok && err != nil {
		outcome = string(codeOf(st.Code()))
	} else if err != nil {
		outcome = string(streams.CodeOf(err))
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	action := cmp.Or(actions[method], method)
	s.cfg.Log.LogAttrs(ctx, level, "audit", slog.String("identity", who), slog.String("action", action), slog.String("target", target),
		slog.String("method", method), slog.String("outcome", outcome))
	if s.cfg.Audit != nil {
		e := audit.Entry{Identity: who, Action: action, Target: target, Outcome: outcome}
		if err != nil {
			e.Error = err.Error()
		}
		s.cfg.Audit.Record(ctx, e)
	}
}

// auditREST lists the latest entries of the audit trail: ?limit=N
// (default 50), oldest first.
func (s *Server) auditREST(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Audit == nil {
		writeError(w, streams.Errorf(streams.CodeFailedPrecondition, "this gateway keeps no audit trail"))
		return
	}
	n := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			writeError(w, streams.Errorf(streams.CodeInvalidArgument, "limit %q is not a positive number", v))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": s.cfg.Audit.Latest(n)})
}
