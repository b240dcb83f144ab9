// Package gateway is Sluice's front door: REST (the Open Inference
// Protocol's REST endpoints, application routes, and Sluice's own API
// through grpc-gateway) and gRPC (the OIP GRPCInferenceService and Sluice's
// Predict and Applications services). Every call becomes Kafka
// request/reply on an application's ingress topic, with an absolute
// deadline and a bounded number of requests in flight.
package gateway

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/gateway/audit"
	"github.com/sluice-serve/sluice/gateway/auth"
	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Config configures the gateway.
type Config struct {
	Caller *streams.Caller
	Namer  streams.Namer
	// Control is the applications and their status, read from Kafka:
	// routes, deploys and deletes go through its store.
	Control *controller.Status
	Limits
	Log *slog.Logger
	// AccessLog, when set, gets one line per call: app, route, code,
	// duration, request id and trace id (trace.go).
	AccessLog *slog.Logger
	// Models, when set, serves registry models by name on the OIP
	// endpoints, through applications of kind model.
	Models Catalog
	// Reports tells which model replicas hold which versions (OIP ready).
	Reports *models.Reports
	// Nodes, when set, lists the nodes in the application list.
	Nodes *placement.Follower
	// Auth, when set, holds the bearer tokens every call but the health
	// checks must carry (access.go); nil serves everyone.
	Auth *auth.Keeper
	// Metrics is the registry /metrics serves: the gateway adds its own
	// collector to it, and the process registers the rest (its runtime,
	// its Kafka clients, the replicas of sluice dev). Nil: a registry of
	// the gateway's series alone.
	Metrics *prometheus.Registry
	// JWT, when set, verifies bearers shaped like JWTs against a key
	// set (access.go); with Auth, opaque tokens still go to its file.
	JWT *auth.JWTVerifier
	// Audit, when set, keeps the admin actions (access.go) beside the
	// log lines, and lists the latest (GET /sluice/v1/audit).
	Audit Auditor
}

// Auditor keeps the audit trail (an *audit.Trail).
type Auditor interface {
	Record(ctx context.Context, e audit.Entry)
	Latest(n int) []audit.Entry
}

// Limits bound what callers can take of a gateway. A zero field takes
// its default.
type Limits struct {
	MaxInFlight int           // requests waiting at once, REST and gRPC together; past it 429 / RESOURCE_EXHAUSTED. Default 10000.
	MaxBody     int64         // request size limit in bytes, REST body or gRPC message; past it 413 / INVALID_ARGUMENT. Default 64 MiB.
	MaxTimeout  time.Duration // cap on a caller's timeout (a longer one is cut to it); default 5m
	// A REST body that sends nothing for BodyIdleTimeout (default 15s), or
	// is not all in by BodyTimeout (default 2m), is cut off with 408 and
	// its connection closed.
	BodyIdleTimeout time.Duration
	BodyTimeout     time.Duration
	// The HTTP server's: a request's headers must be in by HeaderTimeout
	// (default 10s); a keep-alive connection carrying no request is closed
	// after IdleTimeout (default 2m).
	HeaderTimeout time.Duration
	IdleTimeout   time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxInFlight     = 10000
	DefaultMaxBody         = 64 << 20 // large, for tensors
	DefaultMaxTimeout      = 5 * time.Minute
	DefaultBodyIdleTimeout = 15 * time.Second
	DefaultBodyTimeout     = 2 * time.Minute
	DefaultHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout     = 2 * time.Minute
)

// WithDefaults returns l with every zero field at its default.
func (l Limits) WithDefaults() Limits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	def(&l.MaxTimeout, DefaultMaxTimeout)
	def(&l.BodyIdleTimeout, DefaultBodyIdleTimeout)
	def(&l.BodyTimeout, DefaultBodyTimeout)
	def(&l.HeaderTimeout, DefaultHeaderTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	return l
}

// Server is the gateway. Its REST side is Handler, its gRPC side is
// registered with Register.
type Server struct {
	cfg      Config
	apps     atomic.Pointer[appTable]
	inFlight atomic.Int64
	ready    atomic.Bool // /v2/health/ready
	metrics  *metrics
	spread   *spreader
	muxes    sync.Map     // application → *spreader of its multiplexed model ids
	denied   authCounters // calls refused by authentication or authorisation
}

// appTable is the routing state, replaced whole on every change.
type appTable struct {
	byPrefix []route // longest prefix first
	byName   map[string]route
	models   []modelApp // applications serving registry models, most specific first
}

type route struct {
	prefix    string
	app       string
	ingress   string // topic
	timeout   time.Duration
	inference *spec.Inference
	key       []byte // the record key; nil: the request id
	parts     int32  // the ingress topic's partitions (the spec's)
	rules     []gatewayRule
	http      bool   // the ingress is an HTTP ingress: the whole request in, the whole response out
	span      string // the name of a call's server span, "gateway <app>" (trace.go), made once
}

// New builds the gateway and subscribes it to application changes.
func New(cfg Config) *Server {
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, metrics: newMetrics(), spread: newSpreader()}
	cfg.Metrics.MustRegister(collector{s})
	s.apps.Store(&appTable{byName: map[string]route{}})
	cfg.Control.Store().OnChange(func(applied []appstore.Applied) {
		apps := make([]*spec.App, len(applied))
		for i, a := range applied {
			apps[i] = a.Spec
		}
		s.setApps(apps)
	})
	return s
}

// Limits are the limits the gateway runs with, defaults filled in.
func (s *Server) Limits() Limits { return s.cfg.Limits }

func (s *Server) setApps(apps []*spec.App) {
	t := &appTable{byName: make(map[string]route, len(apps))}
	for _, a := range apps {
		r := s.routeOf(a)
		t.byPrefix = append(t.byPrefix, r)
		t.byName[a.Name] = r
	}
	t.models = modelApps(apps, s.routeOf)
	slices.SortStableFunc(t.byPrefix, func(a, b route) int { return len(b.prefix) - len(a.prefix) })
	s.apps.Store(t)
	s.muxes.Range(func(app, _ any) bool { // a deleted application's spreader goes with it
		if _, ok := t.byName[app.(string)]; !ok {
			s.muxes.Delete(app)
		}
		return true
	})
}

func (s *Server) routeOf(a *spec.App) route {
	return route{prefix: a.RoutePrefix, app: a.Name, ingress: s.cfg.Namer.Ingress(a.Name), parts: a.Partitions, timeout: time.Duration(a.RequestTimeout),
		inference: a.Inference, rules: s.compileRules(a), http: servesHTTP(a), span: spanName(a.Name)}
}

func (s *Server) byPath(path string) (route, bool) {
	for _, r := range s.apps.Load().byPrefix {
		if r.prefix == "/" || path == r.prefix || strings.HasPrefix(path, r.prefix+"/") {
			return r, true
		}
	}
	return route{}, false
}

func (s *Server) byName(app string) (route, bool) {
	r, ok := s.apps.Load().byName[app]
	return r, ok
}

// admit takes an in-flight slot or refuses at once.
func (s *Server) admit() (release func(), err error) {
	if n := s.inFlight.Add(1); n > int64(s.cfg.MaxInFlight) {
		s.inFlight.Add(-1)
		return nil, streams.Errorf(streams.CodeResourceExhausted, "gateway has %d requests in flight; retry shortly", s.cfg.MaxInFlight)
	}
	return func() { s.inFlight.Add(-1) }, nil
}

// deadline bounds ctx by the caller's timeout (zero: the app's default),
// capped by MaxTimeout, keeping an earlier deadline ctx already has
// (gRPC's grpc-timeout).
func (s *Server) deadline(ctx context.Context, rt route, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		if _, ok := ctx.Deadline(); ok {
			timeout = s.cfg.MaxTimeout // the caller's own deadline rules
		} else {
			timeout = rt.timeout
		}
	}
	return context.WithTimeout(ctx, min(timeout, s.cfg.MaxTimeout))
}

// send produces one request to the app's ingress.
func (s *Server) send(ctx context.Context, rt route, env protocol.Envelope, value []byte) *streams.Pending {
	return s.cfg.Caller.Start(ctx, &protocol.Request{Topic: rt.ingress, Key: rt.key, Env: env, Value: value})
}

// requestTimeout reads a REST caller's timeout: the `timeout` query
// parameter, or the Sluice-Timeout or Timeout header.
func requestTimeout(r *http.Request) (time.Duration, error) {
	return parseTimeout(cmp.Or(r.URL.Query().Get("timeout"), r.Header.Get("Sluice-Timeout"), r.Header.Get("Timeout")))
}

// parseTimeout reads a Go duration ("500ms") or a number of seconds.
func parseTimeout(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		if secs, serr := strconv.ParseFloat(v, 64); serr == nil && secs > 0 {
			return time.Duration(secs * float64(time.Second)), nil
		}
		return 0, streams.Errorf(streams.CodeInvalidArgument, "timeout %q is not a positive duration like 500ms or a number of seconds", v)
	}
	if d <= 0 {
		return 0, streams.Errorf(streams.CodeInvalidArgument, "timeout %q must be positive", v)
	}
	return d, nil
}

type codeRow struct {
	code streams.Code
	http int
	grpc codes.Code
}

// codeTable is the one table of error codes at the edge: each code's HTTP
// status and gRPC code. Nothing else in the platform speaks either.
var codeTable = []codeRow{
	{streams.CodeOK, http.StatusOK, codes.OK},
	{streams.CodeInvalidArgument, http.StatusBadRequest, codes.InvalidArgument},
	{streams.CodeNotFound, http.StatusNotFound, codes.NotFound},
	{streams.CodeAlreadyExists, http.StatusConflict, codes.AlreadyExists},
	{streams.CodeFailedPrecondition, http.StatusPreconditionFailed, codes.FailedPrecondition},
	{streams.CodeDeadlineExceeded, http.StatusGatewayTimeout, codes.DeadlineExceeded},
	{streams.CodeResourceExhausted, http.StatusTooManyRequests, codes.ResourceExhausted},
	{streams.CodeUnavailable, http.StatusServiceUnavailable, codes.Unavailable},
	{streams.CodeCanceled, 499, codes.Canceled}, // 499: client closed request
	{streams.CodeInternal, http.StatusInternalServerError, codes.Internal},
	{streams.CodeUnauthenticated, http.StatusUnauthorized, codes.Unauthenticated},
	{streams.CodePermissionDenied, http.StatusForbidden, codes.PermissionDenied},
}

// HTTPStatus maps an error code to its HTTP status.
func HTTPStatus(c streams.Code) int {
	for _, row := range codeTable {
		if row.code == c {
			return row.http
		}
	}
	return http.StatusInternalServerError
}

// GRPCCode maps an error code to its gRPC code.
func GRPCCode(c streams.Code) codes.Code {
	for _, row := range codeTable {
		if row.code == c {
			return row.grpc
		}
	}
	return codes.Internal
}

// codeOf maps a gRPC code back, for errors grpc-gateway hands the REST
// side; codes outside the table fold into their nearest kin.
func codeOf(c codes.Code) streams.Code {
	if c == codes.OutOfRange {
		return streams.CodeInvalidArgument
	}
	for _, row := range codeTable {
		if row.grpc == c {
			return row.code
		}
	}
	return streams.CodeInternal
}
