package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/sluice-serve/sluice/platform/spec"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	"github.com/sluice-serve/sluice/streams"
)

// The OIP's repository, statistics and configuration extensions (Triton's
// names and JSON), which perf_analyzer and many tritonclient programs call
// before they infer. The repository is what the gateway can serve: every
// application under each version it declares, and every registry model a
// model deployment serves, under each of its versions.

// indexEntry is one model version of the repository index.
type indexEntry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"` // READY or UNAVAILABLE
	Reason  string `json:"reason,omitempty"`
}

// repositoryIndex lists every model version, sorted; only those ready
// now when readyOnly.
func (s *Server) repositoryIndex(readyOnly bool) []indexEntry {
	t := s.apps.Load()
	var out []indexEntry
	add := func(name, version string) {
		ready, why, err := s.modelReady(name, version, "")
		e := indexEntry{Name: name, Version: version, State: "READY"}
		if err != nil || !ready {
			e.State, e.Reason = "UNAVAILABLE", why
			if err != nil {
				e.Reason = err.Error()
			}
		}
		if e.State == "READY" || !readyOnly {
			out = append(out, e)
		}
	}
	for name, rt := range t.byName {
		for _, v := range versions(rt.inference) {
			add(name, v)
		}
	}
	if s.cfg.Models != nil {
		for _, m := range s.cfg.Models.Models() {
			if _, ok := t.byName[m.Name]; ok {
				continue // an application of that name comes first
			}
			if !slices.ContainsFunc(t.models, func(ma modelApp) bool { return ma.serving.Serves(m.Name, m.Labels()...) }) {
				continue
			}
			for _, v := range m.Versions {
				add(m.Name, v.Version)
			}
		}
	}
	slices.SortFunc(out, func(a, b indexEntry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// modelStatistics are one model version's calls through this gateway.
type modelStatistics struct {
	Name           string         `json:"name"`
	Version        string         `json:"version"`
	LastInference  uint64         `json:"last_inference"` // ms since the Unix epoch; 0: none
	InferenceCount uint64         `json:"inference_count"`
	ExecutionCount uint64         `json:"execution_count"`
	InferenceStats map[string]any `json:"inference_stats"`
	BatchStats     []any          `json:"batch_stats"`
}

type durationStat struct {
	Count uint64 `json:"count"`
	NS    uint64 `json:"ns"`
}

// statistics returns the statistics of model at version (every version
// when empty; every model when model is empty). They count the calls
// this gateway instance made: successes with the time from request to
// reply, failures with theirs. Queue and compute times are the replicas'
// and are not split out here (zero).
func (s *Server) statistics(model, version string) ([]modelStatistics, error) {
	names := []string{model}
	if model == "" {
		names = nil
		for _, e := range s.repositoryIndex(false) {
			if len(names) == 0 || names[len(names)-1] != e.Name {
				names = append(names, e.Name)
			}
		}
	} else if _, err := s.model(model, version); err != nil {
		return nil, err
	}
	var out []modelStatistics
	for _, name := range names {
		byVersion := s.metrics.modelStats(name)
		vs := make([]string, 0, len(byVersion))
		for v := range byVersion {
			if version == "" || v == version {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			vs = append(vs, version) // a model not called yet: zeros
		}
		slices.Sort(vs)
		for _, v := range vs {
			st := byVersion[v]
			ms := modelStatistics{Name: name, Version: v, InferenceCount: st.success.count, ExecutionCount: st.success.count, BatchStats: []any{}}
			if !st.last.IsZero() {
				ms.LastInference = uint64(st.last.UnixMilli())
			}
			zero := durationStat{}
			ms.InferenceStats = map[string]any{
				"success": durationStat{st.success.count, st.success.ns}, "fail": durationStat{st.fail.count, st.fail.ns},
				"queue": zero, "compute_input": zero, "compute_infer": zero, "compute_output": zero,
			}
			out = append(out, ms)
		}
	}
	return out, nil
}

// tensorConfig is a tensor of a model configuration.
type tensorConfig struct {
	Name     string  `json:"name"`
	DataType string  `json:"data_type"` // TYPE_FP32, ...
	Dims     []int64 `json:"dims"`
}

// modelConfig is the model configuration of a model version, from its
// signature.
type modelConfig struct {
	Name         string         `json:"name"`
	Platform     string         `json:"platform"`
	Backend      string         `json:"backend"`
	MaxBatchSize int32          `json:"max_batch_size"` // 0: the shapes are the whole tensors
	Input        []tensorConfig `json:"input"`
	Output       []tensorConfig `json:"output"`
}

func (s *Server) modelConfig(model, version string) (modelConfig, error) {
	md, err := s.modelMeta(model, version)
	if err != nil {
		return modelConfig{}, err
	}
	tensors := func(ts []spec.TensorSpec) []tensorConfig {
		out := make([]tensorConfig, len(ts))
		for i, t := range ts {
			out[i] = tensorConfig{Name: t.Name, DataType: configType(t.Datatype), Dims: append([]int64{}, t.Shape...)}
		}
		return out
	}
	return modelConfig{Name: md.Name, Platform: md.Platform, Backend: md.Platform, Input: tensors(md.Inputs), Output: tensors(md.Outputs)}, nil
}

// configType is the configuration's name of an OIP datatype: BYTES is
// TYPE_STRING, the others TYPE_ and their name.
func configType(datatype string) string {
	if datatype == "BYTES" {
		return "TYPE_STRING"
	}
	return "TYPE_" + datatype
}

// repositoryREST serves the three extensions over REST.
func (s *Server) repositoryREST(mux *http.ServeMux) {
	s.handle(mux, "POST /v2/repository/index", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Ready bool `json:"ready"`
		}
		if r.ContentLength != 0 {
			body, err := s.readBody(w, r)
			if err == nil && len(body) > 0 {
				if jerr := json.Unmarshal(body, &req); jerr != nil {
					err = streams.Errorf(streams.CodeInvalidArgument, "repository index request: %v", jerr)
				}
			}
			if err != nil {
				writeError(w, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, s.repositoryIndex(req.Ready))
	})
	stats := func(w http.ResponseWriter, r *http.Request) {
		st, err := s.statistics(r.PathValue("m"), r.PathValue("v"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"model_stats": st})
	}
	s.handle(mux, "GET /v2/models/stats", stats)
	s.handle(mux, "GET /v2/models/{m}/stats", stats)
	s.handle(mux, "GET /v2/models/{m}/versions/{v}/stats", stats)
	config := func(w http.ResponseWriter, r *http.Request) {
		c, err := s.modelConfig(r.PathValue("m"), r.PathValue("v"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	}
	s.handle(mux, "GET /v2/models/{m}/config", config)
	s.handle(mux, "GET /v2/models/{m}/versions/{v}/config", config)
}

func (x *inferenceService) RepositoryIndex(_ context.Context, req *inference.RepositoryIndexRequest) (*inference.RepositoryIndexResponse, error) {
	out := &inference.RepositoryIndexResponse{}
	for _, e := range x.s.repositoryIndex(req.GetReady()) {
		out.Models = append(out.Models, &inference.RepositoryIndexResponse_ModelIndex{Name: e.Name, Version: e.Version, State: e.State, Reason: e.Reason})
	}
	return out, nil
}

func (x *inferenceService) ModelStatistics(ctx context.Context, req *inference.ModelStatisticsRequest) (*inference.ModelStatisticsResponse, error) {
	st, err := x.s.statistics(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(ctx, err)
	}
	out := &inference.ModelStatisticsResponse{}
	for _, m := range st {
		dur := func(k string) *inference.StatisticDuration {
			d := m.InferenceStats[k].(durationStat)
			return &inference.StatisticDuration{Count: d.Count, Ns: d.NS}
		}
		out.ModelStats = append(out.ModelStats, &inference.ModelStatistics{
			Name: m.Name, Version: m.Version, LastInference: m.LastInference, InferenceCount: m.InferenceCount, ExecutionCount: m.ExecutionCount,
			InferenceStats: &inference.InferStatistics{Success: dur("success"), Fail: dur("fail"), Queue: dur("queue"),
				ComputeInput: dur("compute_input"), ComputeInfer: dur("compute_infer"), ComputeOutput: dur("compute_output")},
		})
	}
	return out, nil
}

func (x *inferenceService) ModelConfig(ctx context.Context, req *inference.ModelConfigRequest) (*inference.ModelConfigResponse, error) {
	c, err := x.s.modelConfig(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(ctx, err)
	}
	tensors := func(ts []tensorConfig) (in []*inference.ModelInput, out []*inference.ModelOutput) {
		for _, t := range ts {
			dt := inference.DataType(inference.DataType_value[t.DataType])
			in = append(in, &inference.ModelInput{Name: t.Name, DataType: dt, Dims: t.Dims})
			out = append(out, &inference.ModelOutput{Name: t.Name, DataType: dt, Dims: t.Dims})
		}
		return in, out
	}
	ins, _ := tensors(c.Input)
	_, outs := tensors(c.Output)
	return &inference.ModelConfigResponse{Config: &inference.ModelConfig{Name: c.Name, Platform: c.Platform, Backend: c.Backend,
		MaxBatchSize: c.MaxBatchSize, Input: ins, Output: outs}}, nil
}
