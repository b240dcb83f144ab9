package gateway

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// The Open Inference Protocol side: a model name is an application's name,
// or else a registry model's (see models.go); /v2/models/{m}/versions/{v}
// selects one of the versions the application declares (inference.versions,
// default "1") or a registry version or "@alias", and the version travels
// to the replicas in sl-version.

// ServerName is what server metadata calls this server.
const ServerName = "sluice"

// Version is the server version server metadata reports.
var Version = "0.1.0"

// SetReady marks the server ready (or not) for /v2/health/ready: the
// platform sets it once its applications are deployed.
func (s *Server) SetReady(v bool) { s.ready.Store(v) }

// inferCall is one OIP call as its transport decoded it: the model and
// version named, the caller's timeout and envelope, and how to read the
// request (REST reads its body only once admitted).
type inferCall struct {
	model, version string
	refuse         error // refused before admission: see open
	timeout        time.Duration
	env            protocol.Envelope
	multiplexed    string // the model id a multiplexed application serves it with (MultiplexHeader)
	read           func() (*oip.InferRequest, error)
}

// infer runs one inference, over REST or gRPC: the model resolved to the
// application that serves it, then the one call path.
func (s *Server) infer(ctx context.Context, q *inferCall) (*oip.InferResponse, error) {
	tg, terr := s.model(q.model, q.version)
	name := q.model
	if streams.CodeOf(terr) == streams.CodeNotFound {
		name = "" // unknown names are not series of their own
	}
	x, err := s.open(ctx, name, q.refuse)
	x.version, x.infer = q.version, true
	defer x.close()
	if err != nil {
		return nil, err
	}
	if terr != nil {
		return nil, x.fail(terr)
	}
	x.version = servingVersion(tg, q.version)
	req, err := q.read()
	if err != nil {
		return nil, x.fail(err)
	}
	if err := checkOutputs(q.model, req, s.declaredOutputs(tg, q.version)); err != nil {
		return nil, x.fail(err)
	}
	rt := tg.route
	if tg.reg != nil {
		var owners func() map[int32]string
		if s.cfg.Reports != nil {
			owners = func() map[int32]string { return s.cfg.Reports.Owners(tg.app.app, rt.ingress) }
		}
		rt.key = s.spread.key(q.model, tg.app.partitions, tg.app.serving.Spread, owners)
	}
	payload, err := req.MarshalBinary()
	if err != nil {
		return nil, x.fail(streams.Errorf(streams.CodeInvalidArgument, "%v", err))
	}
	c := &call{rt: rt, timeout: q.timeout, env: q.env, body: payload}
	c.env.ContentType, c.env.Model, c.env.Version = oip.ContentType, q.model, q.version
	if tg.reg == nil { // an application's model: the multiplexed id names the one it serves this with
		c.model = q.multiplexed
	} else if q.multiplexed != "" && q.multiplexed != q.model {
		return nil, x.fail(streams.Errorf(streams.CodeInvalidArgument, "%s %q: model %s is a registry model, named by the path; the header is for applications that multiplex models", MultiplexHeader, q.multiplexed, q.model))
	}
	if err := x.send(c); err != nil {
		return nil, err
	}
	rep, err := x.next()
	if err != nil {
		return nil, err
	}
	if rep.Streamed() {
		return nil, x.fail(streams.Errorf(streams.CodeInvalidArgument, "application %s streams its answer: call it on its route or with PredictStream", rt.app))
	}
	resp := new(oip.InferResponse)
	if err := resp.UnmarshalBinary(rep.Value); err != nil {
		return nil, x.fail(streams.Errorf(streams.CodeInternal, "application %s answered something that is not an inference response: %v", rt.app, err))
	}
	if resp.Outputs, err = requestedOutputs(q.model, req, resp.Outputs); err != nil {
		return nil, x.fail(err)
	}
	resp.ModelName = q.model
	if tg.reg != nil { // the replica says which version answered (an alias resolves there)
		resp.ModelVersion = cmp.Or(resp.ModelVersion, q.version)
	} else {
		resp.ModelVersion = cmp.Or(q.version, resp.ModelVersion, defaultVersion(rt.inference))
	}
	resp.ID = req.ID
	x.version = resp.ModelVersion
	return resp, nil
}

// servingVersion is the version a request naming version is served by,
// as far as the gateway can tell: an application's default version, or
// what a registry model's default or alias resolves to now.
func servingVersion(tg target, version string) string {
	if tg.reg == nil {
		return cmp.Or(version, defaultVersion(tg.inference))
	}
	if v, err := servedVersion(tg.reg, tg.app, version); err == nil {
		return v.Version
	}
	return version
}

// declaredOutputs are the output names the model's signature declares
// (nil when it declares none).
func (s *Server) declaredOutputs(tg target, version string) []string {
	var outs []spec.TensorSpec
	switch {
	case tg.reg != nil:
		if v, err := servedVersion(tg.reg, tg.app, version); err == nil {
			outs = v.Outputs
		}
	case tg.inference != nil:
		outs = tg.inference.Outputs
	}
	names := make([]string, len(outs))
	for i, o := range outs {
		names[i] = o.Name
	}
	return names
}

// checkOutputs refuses, before anything runs, a request for an output
// the model's signature does not declare.
func checkOutputs(model string, req *oip.InferRequest, declared []string) error {
	if len(declared) == 0 {
		return nil
	}
	for _, o := range req.Outputs {
		if !slices.Contains(declared, o.Name) {
			return streams.Errorf(streams.CodeInvalidArgument, "model %s has no output %q (its outputs: %s)", model, o.Name, strings.Join(declared, ", "))
		}
	}
	return nil
}

// requestedOutputs keeps the outputs the request asked for, in its order
// (all of them when it asked for none); one the model did not return is
// an error naming what it did return.
func requestedOutputs(model string, req *oip.InferRequest, got []oip.Tensor) ([]oip.Tensor, error) {
	if len(req.Outputs) == 0 {
		return got, nil
	}
	out := make([]oip.Tensor, 0, len(req.Outputs))
	for _, o := range req.Outputs {
		i := slices.IndexFunc(got, func(t oip.Tensor) bool { return t.Name == o.Name })
		if i < 0 {
			names := make([]string, len(got))
			for j, t := range got {
				names[j] = t.Name
			}
			return nil, streams.Errorf(streams.CodeInvalidArgument, "model %s has no output %q (it returned: %s)", model, o.Name, strings.Join(names, ", "))
		}
		out = append(out, got[i])
	}
	return out, nil
}

// target is what serves a model name: an application of that name, or a
// registry model (reg set) through the application app.
type target struct {
	route
	reg *registry.Model
	app modelApp
}

// model finds what serves model at version. Application names come first.
func (s *Server) model(model, version string) (target, error) {
	rt, ok := s.byName(model)
	if !ok {
		m, ma, err := s.registryModel(model, version)
		if err != nil {
			return target{}, err
		}
		return target{route: ma.route, reg: m, app: ma}, nil
	}
	if !rt.inference.ServesVersion(version) {
		return target{}, streams.Errorf(streams.CodeNotFound, "model %q has no version %q (it serves %v)", model, version, versions(rt.inference))
	}
	return target{route: rt}, nil
}

func versions(in *spec.Inference) []string {
	if in == nil || len(in.Versions) == 0 {
		return []string{"1"}
	}
	return in.Versions
}

func defaultVersion(in *spec.Inference) string { return versions(in)[0] }

// modelReady reports whether the model exists at version and can answer
// now: an application's replicas run; a registry model's version is
// loaded on at least one replica (the first request loads it otherwise).
// multiplexed, the id a call would name in MultiplexHeader, asks about
// that model of an application that multiplexes models: ready when a
// live replica of the application reports it loaded. why says what is
// missing.
func (s *Server) modelReady(model, version, multiplexed string) (ready bool, why string, err error) {
	tg, err := s.model(model, version)
	if err != nil {
		return false, "", err
	}
	if tg.reg == nil && multiplexed != "" {
		return s.multiplexedReady(tg.route, multiplexed)
	}
	if tg.reg != nil && multiplexed != "" && multiplexed != model {
		return false, "", streams.Errorf(streams.CodeInvalidArgument, "%s %q: model %s is a registry model, named by the path; the header is for applications that multiplex models", MultiplexHeader, multiplexed, model)
	}
	if tg.reg == nil {
		_, ok := s.cfg.Control.Ready(model)
		if !ok {
			why = "the application's replicas are not all running"
		}
		return ok, why, nil
	}
	v, err := servedVersion(tg.reg, tg.app, version)
	if err != nil {
		return false, "", err
	}
	if s.cfg.Reports == nil {
		return false, "no replica reports are read here", nil
	}
	if n := s.cfg.Reports.LoadedOn(tg.app.app, model, v.Version); n > 0 {
		return true, "", nil
	}
	if failed := s.cfg.Reports.FailedOn(tg.app.app, model, v.Version); failed != "" {
		return false, failed, nil
	}
	return false, fmt.Sprintf("version %s is not loaded on any replica of %s; the first request loads it", v.Version, tg.app.app), nil
}

// multiplexedReady reports whether a live replica of rt's application
// holds the model id, from the models reports its replicas publish.
func (s *Server) multiplexedReady(rt route, id string) (ready bool, why string, err error) {
	if err := checkModelID(id); err != nil {
		return false, "", err
	}
	if s.cfg.Reports == nil {
		return false, "no replica reports are read here", nil
	}
	if s.cfg.Reports.HoldingOn(rt.app, id) > 0 {
		return true, "", nil
	}
	if failed := s.cfg.Reports.FailingOn(rt.app, id); failed != "" {
		return false, failed, nil
	}
	return false, fmt.Sprintf("model %s is not loaded on any replica of %s; the first request for it loads it", id, rt.app), nil
}

// modelMetadata is the OIP model metadata of an application or a
// registry model version.
type modelMetadata struct {
	Name     string            `json:"name"`
	Versions []string          `json:"versions"`
	Platform string            `json:"platform"`
	Inputs   []spec.TensorSpec `json:"inputs"`
	Outputs  []spec.TensorSpec `json:"outputs"`
}

func (s *Server) modelMeta(model, version string) (modelMetadata, error) {
	tg, err := s.model(model, version)
	if err != nil {
		return modelMetadata{}, err
	}
	md := modelMetadata{Name: model, Platform: "sluice", Inputs: []spec.TensorSpec{}, Outputs: []spec.TensorSpec{}}
	var in *spec.Inference
	if tg.reg != nil {
		v, err := servedVersion(tg.reg, tg.app, version)
		if err != nil {
			return modelMetadata{}, err
		}
		md.Versions = registryVersions(tg.reg)
		in = &spec.Inference{Platform: v.Format, Inputs: v.Inputs, Outputs: v.Outputs}
	} else {
		md.Versions = versions(tg.inference)
		in = tg.inference
	}
	if in != nil {
		md.Platform = cmp.Or(in.Platform, md.Platform)
		md.Inputs = append(md.Inputs, in.Inputs...)
		md.Outputs = append(md.Outputs, in.Outputs...)
	}
	return md, nil
}

// oipHandler serves the OIP REST endpoints.
func (s *Server) oipHandler() http.Handler {
	mux := http.NewServeMux()
	s.handle(mux, "GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	s.handle(mux, "GET /v2/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		status := http.StatusOK
		if !s.ready.Load() {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]bool{"ready": s.ready.Load()})
	})
	meta := func(w http.ResponseWriter, r *http.Request) {
		md, err := s.modelMeta(r.PathValue("m"), r.PathValue("v"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, md)
	}
	s.handle(mux, "GET /v2/models/{m}", meta)
	s.handle(mux, "GET /v2/models/{m}/versions/{v}", meta)
	readyH := func(w http.ResponseWriter, r *http.Request) {
		id := httpModel(r.Header)
		ok, why, err := s.modelReady(r.PathValue("m"), r.PathValue("v"), id)
		if err != nil {
			writeError(w, err)
			return
		}
		status := http.StatusOK
		body := map[string]any{"name": r.PathValue("m"), "ready": ok}
		if id != "" {
			body["model_id"] = id
		}
		if !ok {
			status = http.StatusServiceUnavailable
			body["reason"] = why
		}
		writeJSON(w, status, body)
	}
	s.handle(mux, "GET /v2/models/{m}/ready", readyH)
	s.handle(mux, "GET /v2/models/{m}/versions/{v}/ready", readyH)
	s.handle(mux, "POST /v2/models/{m}/infer", s.inferREST)
	s.handle(mux, "POST /v2/models/{m}/versions/{v}/infer", s.inferREST)
	onlyPost := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " " + r.URL.Path + ": inference takes POST"})
	}
	s.handle(mux, "/v2/models/{m}/infer", onlyPost)
	s.handle(mux, "/v2/models/{m}/versions/{v}/infer", onlyPost)
	s.repositoryREST(mux)
	s.handle(mux, "/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, streams.Errorf(streams.CodeNotFound, "no inference endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) serverMetadataREST(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " " + r.URL.Path + ": server metadata takes GET"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": ServerName, "version": Version, "extensions": []string{"binary_tensor_data"}})
}

// inferREST decodes a JSON or binary-extension request, runs it, and
// writes JSON, with the outputs the caller asked for as binary appended.
func (s *Server) inferREST(w http.ResponseWriter, r *http.Request) {
	q := &inferCall{model: r.PathValue("m"), version: r.PathValue("v"), refuse: s.declaredTooLarge(r), env: httpEnvelope(r.Header), multiplexed: httpModel(r.Header)}
	var req *oip.InferRequest
	q.read = func() (*oip.InferRequest, error) {
		var err error
		if q.timeout, err = requestTimeout(r); err != nil {
			return nil, err
		}
		body, err := s.readBody(w, r)
		if err != nil {
			return nil, err
		}
		if h := r.Header.Get("Inference-Header-Content-Length"); h != "" {
			n, perr := strconv.Atoi(h)
			if perr != nil {
				return nil, streams.Errorf(streams.CodeInvalidArgument, "Inference-Header-Content-Length %q is not a number", h)
			}
			req, err = oip.DecodeRequestBinary(body, n)
		} else {
			req, err = oip.DecodeRequestJSON(body)
		}
		if err != nil {
			return nil, streams.Errorf(streams.CodeInvalidArgument, "%v", err)
		}
		return req, nil
	}
	resp, err := s.infer(r.Context(), q)
	if err != nil {
		writeError(w, err)
		return
	}
	js, bin, err := oip.EncodeResponseJSON(resp, req.WantsBinary)
	if err != nil { // e.g. BYTES that are not UTF-8 cannot be JSON: send every output binary
		js, bin, err = oip.EncodeResponseJSON(resp, func(string) bool { return true })
	}
	if err != nil {
		writeError(w, streams.Errorf(streams.CodeInternal, "encode response: %v", err))
		return
	}
	if len(bin) > 0 {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Inference-Header-Content-Length", strconv.Itoa(len(js)))
		w.Header().Set("Content-Length", strconv.Itoa(len(js)+len(bin)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(js)
		_, _ = w.Write(bin)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(js)
}
