package gateway

import (
	"cmp"
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// The Open Inference Protocol side: a model name is an application's name;
// /v2/models/{m}/versions/{v} selects one of the versions the application
// declares (inference.versions, default "1"), and the version travels to
// the replicas in sl-version.

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
	rt, err := s.model(model, version)
	if err != nil {
		return nil, err
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
	env := streams.Envelope{ContentType: oip.ContentType, Model: model, Version: version}
	p := s.send(ctx, rt, env, payload)
	defer p.Close()
	rep, err := p.Next(ctx)
	if err != nil {
		return nil, err
	}
	resp := new(oip.InferResponse)
	if err := resp.UnmarshalBinary(rep.Value); err != nil {
		return nil, streams.Errorf(streams.CodeInternal, "application %s answered something that is not an inference response: %v", model, err)
	}
	resp.ModelName = model
	resp.ModelVersion = cmp.Or(version, resp.ModelVersion, defaultVersion(rt.inference))
	resp.ID = req.ID
	return resp, nil
}

// model finds the application serving model at version.
func (s *Server) model(model, version string) (route, error) {
	rt, ok := s.byName(model)
	if !ok {
		return rt, streams.Errorf(streams.CodeNotFound, "unknown model %q", model)
	}
	if !rt.inference.ServesVersion(version) {
		return rt, streams.Errorf(streams.CodeNotFound, "model %q has no version %q (it serves %v)", model, version, versions(rt.inference))
	}
	return rt, nil
}

func versions(in *spec.Inference) []string {
	if in == nil || len(in.Versions) == 0 {
		return []string{"1"}
	}
	return in.Versions
}

func defaultVersion(in *spec.Inference) string { return versions(in)[0] }

// modelReady reports whether the model exists at version and its replicas run.
func (s *Server) modelReady(model, version string) (bool, error) {
	if _, err := s.model(model, version); err != nil {
		return false, err
	}
	_, ok := s.cfg.Controller.Ready(model)
	return ok, nil
}

// modelMetadata is the OIP model metadata of an application.
type modelMetadata struct {
	Name     string            `json:"name"`
	Versions []string          `json:"versions"`
	Platform string            `json:"platform"`
	Inputs   []spec.TensorSpec `json:"inputs"`
	Outputs  []spec.TensorSpec `json:"outputs"`
}

func (s *Server) modelMeta(model, version string) (modelMetadata, error) {
	rt, err := s.model(model, version)
	if err != nil {
		return modelMetadata{}, err
	}
	md := modelMetadata{Name: model, Versions: versions(rt.inference), Platform: "sluice", Inputs: []spec.TensorSpec{}, Outputs: []spec.TensorSpec{}}
	if in := rt.inference; in != nil {
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
		ok, err := s.modelReady(r.PathValue("m"), r.PathValue("v"))
		if err != nil {
			writeError(w, err)
			return
		}
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]any{"name": r.PathValue("m"), "ready": ok})
	}
	mux.HandleFunc("GET /v2/models/{m}/ready", readyH)
	mux.HandleFunc("GET /v2/models/{m}/versions/{v}/ready", readyH)
	mux.HandleFunc("POST /v2/models/{m}/infer", s.inferREST)
	mux.HandleFunc("POST /v2/models/{m}/versions/{v}/infer", s.inferREST)
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
	resp, err := s.infer(r.Context(), r.PathValue("m"), r.PathValue("v"), timeout, req)
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
