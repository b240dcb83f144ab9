package gateway

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
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

// infer runs one inference on the application named model.
func (s *Server) infer(ctx context.Context, model, version string, timeout time.Duration, req *oip.InferRequest) (*oip.InferResponse, error) {
	start := time.Now()
	resp, err := s.inferOnce(ctx, model, version, timeout, req)
	s.metrics.observe(model, streams.CodeOf(err), time.Since(start))
	return resp, err
}

func (s *Server) inferOnce(ctx context.Context, model, version string, timeout time.Duration, req *oip.InferRequest) (*oip.InferResponse, error) {
	tg, err := s.model(model, version)
	if err != nil {
		return nil, err
	}
	rt := tg.route
	if tg.reg != nil {
		var owners func() map[int32]string
		if s.cfg.Reports != nil {
			owners = func() map[int32]string { return s.cfg.Reports.Owners(tg.app.app, rt.ingress) }
		}
		rt.key = s.spread.key(model, tg.app.partitions, tg.app.serving.Spread, owners)
	}
	release, err := s.admit()
	if err != nil {
		return nil, err
	}
	defer release()
	payload, err := req.MarshalBinary()
	if err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "%v", err)
	}
	ctx, cancel := s.deadline(ctx, rt, timeout)
	defer cancel()
	env := protocol.Envelope{ContentType: oip.ContentType, Model: model, Version: version}
	callerHeaders(ctx, &env)
	if rt, err = s.applyRules(ctx, rt, &env, payload); err != nil {
		return nil, err
	}
	p := s.send(ctx, rt, env, payload)
	defer p.Close()
	rep, err := p.Next(ctx)
	if err != nil {
		return nil, err
	}
	resp := new(oip.InferResponse)
	if err := resp.UnmarshalBinary(rep.Value); err != nil {
		return nil, streams.Errorf(streams.CodeInternal, "application %s answered something that is not an inference response: %v", rt.app, err)
	}
	resp.ModelName = model
	if tg.reg != nil { // the replica says which version answered (an alias resolves there)
		resp.ModelVersion = cmp.Or(resp.ModelVersion, version)
	} else {
		resp.ModelVersion = cmp.Or(version, resp.ModelVersion, defaultVersion(rt.inference))
	}
	resp.ID = req.ID
	return resp, nil
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
// why says what is missing.
func (s *Server) modelReady(model, version string) (ready bool, why string, err error) {
	tg, err := s.model(model, version)
	if err != nil {
		return false, "", err
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
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, _ *http.Request) {
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
	mux.HandleFunc("GET /v2/models/{m}", meta)
	mux.HandleFunc("GET /v2/models/{m}/versions/{v}", meta)
	readyH := func(w http.ResponseWriter, r *http.Request) {
		ok, why, err := s.modelReady(r.PathValue("m"), r.PathValue("v"))
		if err != nil {
			writeError(w, err)
			return
		}
		status := http.StatusOK
		body := map[string]any{"name": r.PathValue("m"), "ready": ok}
		if !ok {
			status = http.StatusServiceUnavailable
			body["reason"] = why
		}
		writeJSON(w, status, body)
	}
	mux.HandleFunc("GET /v2/models/{m}/ready", readyH)
	mux.HandleFunc("GET /v2/models/{m}/versions/{v}/ready", readyH)
	mux.HandleFunc("POST /v2/models/{m}/infer", s.inferREST)
	mux.HandleFunc("POST /v2/models/{m}/versions/{v}/infer", s.inferREST)
	onlyPost := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " " + r.URL.Path + ": inference takes POST"})
	}
	mux.HandleFunc("/v2/models/{m}/infer", onlyPost)
	mux.HandleFunc("/v2/models/{m}/versions/{v}/infer", onlyPost)
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, streams.Errorf(streams.CodeNotFound, "no inference endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) serverMetadataREST(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, streams.Errorf(streams.CodeNotFound, "no inference endpoint %s %s", r.Method, r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": ServerName, "version": Version, "extensions": []string{"binary_tensor_data"}})
}

// inferREST decodes a JSON or binary-extension request, runs it, and
// writes JSON, with the outputs the caller asked for as binary appended.
func (s *Server) inferREST(w http.ResponseWriter, r *http.Request) {
	timeout, err := requestTimeout(r)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := s.readBody(w, r) // size checked before admission, which infer does
	if err != nil {
		writeError(w, err)
		return
	}
	var req *oip.InferRequest
	if h := r.Header.Get("Inference-Header-Content-Length"); h != "" {
		n, perr := strconv.Atoi(h)
		if perr != nil {
			writeError(w, streams.Errorf(streams.CodeInvalidArgument, "Inference-Header-Content-Length %q is not a number", h))
			return
		}
		req, err = oip.DecodeRequestBinary(body, n)
	} else {
		req, err = oip.DecodeRequestJSON(body)
	}
	if err != nil {
		writeError(w, streams.Errorf(streams.CodeInvalidArgument, "%v", err))
		return
	}
	resp, err := s.infer(withHTTPHeaders(r.Context(), r.Header), r.PathValue("m"), r.PathValue("v"), timeout, req)
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
