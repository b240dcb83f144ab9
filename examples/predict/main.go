// Command predict is an application's front door written as a web app:
// an HTTP ingress (serve.HTTP) whose net/http ServeMux serves dynamic
// endpoints over the model registry, as a Ray Serve user writes a FastAPI
// ingress. It is a module of its own, published as a code bundle
// (`sluice code push predict ./predict`) and deployed by app.yaml beside
// a `kind: model` deployment it calls through a handle.
//
//	GET  /predict/{model}            the model's versions, aliases, inputs and outputs
//	POST /predict/{model}/{version}  an inference request (OIP JSON) to that version
//
// The application's route prefix is /predict: its handler sees the path
// below it, so its patterns are "GET /{model}" and "POST /{model}/{version}".
//
// A version published to the registry answers at once, with no redeploy:
// the model deployment follows the registry. An unknown model or version
// is a 404 with a JSON error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/streams"
)

// Models is a handle to the application's model deployment.
type Models = serve.Handle[*oip.InferRequest, *oip.InferResponse]

// predictor serves the endpoints. Describing a model asks the platform's
// registry API (GET /sluice/v1/models/{name}) at api: the platform's
// public contract, which code in any language can reach, and which needs
// no registry follower in every replica of the bundle. Inference goes
// through the model deployment, which loads and caches the weights.
type predictor struct {
	models *Models
	api    string // the platform's address: http://host:port
	client *http.Client
}

// newPredictor builds the front door; api is the platform's address.
func newPredictor(models *Models, api string) (http.Handler, error) {
	if _, err := url.ParseRequestURI(api); err != nil || !strings.HasPrefix(api, "http") {
		return nil, fmt.Errorf("api %q is not the platform's http:// address", api)
	}
	p := &predictor{models: models, api: strings.TrimSuffix(api, "/"), client: &http.Client{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{model}", p.describe)
	mux.HandleFunc("POST /{model}/{version}", p.infer)
	return mux, nil
}

// Predict is the HTTP ingress deployment.
var Predict = serve.HTTP("Predict", newPredictor)

// version is what describe tells of one version.
type version struct {
	Version string   `json:"version"`
	Format  string   `json:"format,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	Inputs  []tensor `json:"inputs,omitempty"`
	Outputs []tensor `json:"outputs,omitempty"`
}

// tensor is a tensor of a version's signature. The registry's REST API
// writes 64-bit integers as JSON strings (protobuf's JSON mapping);
// describe answers numbers.
type tensor struct {
	Name     string        `json:"name"`
	Datatype string        `json:"datatype"`
	Shape    []json.Number `json:"shape"`
}

func (t tensor) MarshalJSON() ([]byte, error) {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		n, err := d.Int64()
		if err != nil {
			return nil, fmt.Errorf("tensor %s: dimension %q: %w", t.Name, d, err)
		}
		dims[i] = n
	}
	return json.Marshal(struct {
		Name     string  `json:"name"`
		Datatype string  `json:"datatype"`
		Shape    []int64 `json:"shape"`
	}{t.Name, t.Datatype, dims})
}

func (p *predictor) describe(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, p.api+"/sluice/v1/models/"+url.PathEscape(name), nil)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := p.client.Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, "registry: "+err.Error())
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		writeError(w, http.StatusBadGateway, "registry: "+err.Error())
		return
	case resp.StatusCode == http.StatusNotFound:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no model %s in the registry", name))
		return
	case resp.StatusCode != http.StatusOK:
		writeError(w, http.StatusBadGateway, fmt.Sprintf("registry answered %d: %s", resp.StatusCode, body))
		return
	}
	var m struct {
		Name     string            `json:"name"`
		Versions []version         `json:"versions"`
		Aliases  map[string]string `json:"aliases"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		writeError(w, http.StatusBadGateway, "registry: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": m.Name, "versions": m.Versions, "aliases": m.Aliases})
}

func (p *predictor) infer(w http.ResponseWriter, r *http.Request) {
	model, ver := r.PathValue("model"), r.PathValue("version")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req, err := oip.DecodeRequestJSON(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "inference request: "+err.Error())
		return
	}
	ctx := serve.WithModel(r.Context(), model, ver)
	resp, err := p.models.Remote(ctx, req).Result(ctx)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	out, _, err := oip.EncodeResponseJSON(resp, func(string) bool { return false })
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Model-Version", resp.ModelVersion)
	_, _ = w.Write(out)
}

// statusOf is the HTTP status of a platform error.
func statusOf(err error) int {
	switch streams.CodeOf(err) {
	case streams.CodeNotFound:
		return http.StatusNotFound
	case streams.CodeInvalidArgument:
		return http.StatusBadRequest
	case streams.CodeFailedPrecondition:
		return http.StatusPreconditionFailed
	case streams.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case streams.CodeUnavailable, streams.CodeResourceExhausted:
		return http.StatusServiceUnavailable
	}
	var ctxErr interface{ Timeout() bool }
	if errors.As(err, &ctxErr) && ctxErr.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	reg, err := serve.NewRegistry(nil, Predict)
	if err != nil {
		fmt.Fprintln(os.Stderr, "predict:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cli.Run(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Log: log, Registry: reg})
	if err != nil {
		fmt.Fprintln(os.Stderr, "predict:", err)
	}
	os.Exit(cli.ExitCode(err))
}
