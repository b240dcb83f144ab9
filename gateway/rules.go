package gateway

import (
	"context"
	"strconv"
	"strings"

	"github.com/sluice-serve/sluice/cel"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Caller headers that travel with a request, for rules: x-* names, a
// bounded number of bounded values.
const (
	maxRequestHeaders    = 32
	maxRequestHeaderSize = 1024
)

// gatewayRule is an application's rule, compiled.
type gatewayRule struct {
	when    *cel.Program // nil: always
	app     string
	version string
	path    string // rules[i], for errors
}

// compileRules compiles an application's gateway rules; the spec was
// validated at deploy time, so a rule that does not compile here is
// skipped (and said).
func (s *Server) compileRules(a *spec.App) []gatewayRule {
	var out []gatewayRule
	for i, r := range a.Rules {
		g := gatewayRule{app: r.App, version: r.Version, path: a.Name + ": " + spec.DescribeRule("rules["+strconv.Itoa(i)+"].when", r.When)}
		if r.When != "" {
			p, err := cel.Compile(r.When, cel.Condition)
			if err != nil {
				s.cfg.Log.Error("gateway rule does not compile; skipped", "app", a.Name, "rule", i, "err", err)
				continue
			}
			g.when = p
		}
		out = append(out, g)
	}
	return out
}

// applyRules sends a request where the first matching rule of its
// application says: another application's ingress, or a model version.
// A rule that fails to evaluate answers 400 naming it.
func (s *Server) applyRules(ctx context.Context, rt route, env *protocol.Envelope, body []byte) (route, error) {
	if len(rt.rules) == 0 {
		return rt, nil
	}
	in := &cel.Input{Model: env.Model, App: rt.app, Body: body, Headers: env.RequestHeaders()}
	for _, r := range rt.rules {
		if r.when != nil {
			ok, err := r.when.Bool(ctx, in)
			if err != nil {
				return rt, streams.Errorf(streams.CodeInvalidArgument, "rule %s: %v", r.path, err)
			}
			if !ok {
				continue
			}
		}
		if r.version != "" {
			env.Version = r.version
		}
		if r.app != "" && r.app != rt.app {
			next, ok := s.byName(r.app)
			if !ok {
				return rt, streams.Errorf(streams.CodeUnavailable, "rule %s sends to application %s, which is not deployed", r.path, r.app)
			}
			if next.http != rt.http { // the request was read, and will be answered, as the first application's kind
				return rt, streams.Errorf(streams.CodeFailedPrecondition, "rule %s sends to application %s, %s, from %s, %s: a rule sends only to an application of the same kind",
					r.path, r.app, kindOfRoute(next), rt.app, kindOfRoute(rt))
			}
			return next, nil
		}
		return rt, nil
	}
	return rt, nil
}

// kindOfRoute says whether a route's application is an HTTP ingress.
func kindOfRoute(rt route) string {
	if rt.http {
		return "an HTTP ingress"
	}
	return "not an HTTP ingress"
}

// forwardHeader adds one of the caller's headers to env when it travels
// with the request: an x-* name, a bounded value, a bounded count.
func forwardHeader(env *protocol.Envelope, name, value string) {
	if len(name) > 2 && strings.EqualFold(name[:2], "x-") && len(value) <= maxRequestHeaderSize && len(env.Request) < maxRequestHeaders {
		env.AddRequestHeader(name, value)
	}
}

// forwardHeaders adds a caller's REST headers or gRPC metadata (both
// map a name to its values; the first value counts).
func forwardHeaders(env *protocol.Envelope, hs map[string][]string) {
	for name, vs := range hs {
		if len(vs) > 0 {
			forwardHeader(env, name, vs[0])
		}
	}
}
