package gateway

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/replicas/gpu"
	"github.com/sluice-serve/sluice/streams"
)

// GRPCOptions are the server options the gateway needs: message limits
// raised to the request size limit, so tensors fit, and the
// authorisation of every method of every service on the server
// (access.go).
func (s *Server) GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(s.cfg.MaxBody)),
		grpc.MaxSendMsgSize(int(s.cfg.MaxBody)),
		grpc.ChainUnaryInterceptor(s.unaryAuth),
		grpc.ChainStreamInterceptor(s.streamAuth),
	}
}

// Register adds the gateway's services to a gRPC server.
func (s *Server) Register(srv grpc.ServiceRegistrar) {
	inference.RegisterGRPCInferenceServiceServer(srv, &inferenceService{s: s})
	sluicev1.RegisterPredictServer(srv, &predictService{s: s})
	sluicev1.RegisterApplicationsServer(srv, &appsService{s: s})
}

// APIHandler serves Sluice's own API as REST through grpc-gateway, over a
// client connection to this gateway's gRPC server, so REST calls pass the
// same limits and interceptors as gRPC calls.
func APIHandler(ctx context.Context, conn *grpc.ClientConn) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			st := status.Convert(err)
			writeError(w, &streams.Error{Code: codeOf(st.Code()), Msg: st.Message()})
		}),
		// A path the API has under another method is 405, not a 500.
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, status int) {
			if status == http.StatusMethodNotAllowed {
				writeJSON(w, status, map[string]string{"error": r.Method + " " + r.URL.Path + ": the API has no such method on this path", "code": string(streams.CodeInvalidArgument)})
				return
			}
			writeError(w, streams.Errorf(streams.CodeNotFound, "no API endpoint %s %s", r.Method, r.URL.Path))
		}),
	)
	if err := sluicev1.RegisterApplicationsHandler(ctx, mux, conn); err != nil {
		return nil, err
	}
	if err := sluicev1.RegisterPredictHandler(ctx, mux, conn); err != nil {
		return nil, err
	}
	if err := sluicev1.RegisterModelsHandler(ctx, mux, conn); err != nil {
		return nil, err
	}
	if err := sluicev1.RegisterCodeHandler(ctx, mux, conn); err != nil {
		return nil, err
	}
	return mux, nil
}

// GRPCError turns any error into a gRPC status with the mapped code; other
// services served beside the gateway's use it too.
func GRPCError(ctx context.Context, err error) error { return grpcError(ctx, err) }

// grpcError turns any error into a gRPC status with the mapped code.
func grpcError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && streams.CodeOf(err) == streams.CodeInternal {
		return err // already a status
	}
	code := streams.CodeOf(err)
	if code == streams.CodeResourceExhausted {
		_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", "1"))
	}
	return status.Error(GRPCCode(code), err.Error())
}

type inferenceService struct {
	inference.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (x *inferenceService) ServerLive(context.Context, *inference.ServerLiveRequest) (*inference.ServerLiveResponse, error) {
	return &inference.ServerLiveResponse{Live: true}, nil
}

func (x *inferenceService) ServerReady(context.Context, *inference.ServerReadyRequest) (*inference.ServerReadyResponse, error) {
	return &inference.ServerReadyResponse{Ready: x.s.ready.Load()}, nil
}

func (x *inferenceService) ServerMetadata(context.Context, *inference.ServerMetadataRequest) (*inference.ServerMetadataResponse, error) {
	return &inference.ServerMetadataResponse{Name: ServerName, Version: Version, Extensions: []string{"binary_tensor_data"}}, nil
}

func (x *inferenceService) ModelReady(ctx context.Context, req *inference.ModelReadyRequest) (*inference.ModelReadyResponse, error) {
	ok, _, err := x.s.modelReady(req.GetName(), req.GetVersion(), grpcModel(ctx, nil))
	if streams.CodeOf(err) == streams.CodeNotFound {
		return &inference.ModelReadyResponse{Ready: false}, nil // as over REST: an unknown model is not ready
	}
	if err != nil {
		return nil, grpcError(ctx, err)
	}
	return &inference.ModelReadyResponse{Ready: ok}, nil
}

func (x *inferenceService) ModelMetadata(ctx context.Context, req *inference.ModelMetadataRequest) (*inference.ModelMetadataResponse, error) {
	md, err := x.s.modelMeta(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(ctx, err)
	}
	tensors := func(ts []spec.TensorSpec) []*inference.ModelMetadataResponse_TensorMetadata {
		out := make([]*inference.ModelMetadataResponse_TensorMetadata, len(ts))
		for i, t := range ts {
			out[i] = &inference.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		}
		return out
	}
	return &inference.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform, Inputs: tensors(md.Inputs), Outputs: tensors(md.Outputs)}, nil
}

func (x *inferenceService) ModelInfer(ctx context.Context, req *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	resp, err := x.s.infer(ctx, &inferCall{model: req.GetModelName(), version: req.GetModelVersion(), env: grpcEnvelope(ctx, nil), multiplexed: grpcModel(ctx, nil),
		read: func() (*oip.InferRequest, error) {
			r, err := oip.RequestFromProto(req)
			if err != nil {
				return nil, streams.Errorf(streams.CodeInvalidArgument, "%v", err)
			}
			return r, nil
		}})
	if err != nil {
		return nil, grpcError(ctx, err)
	}
	return oip.ResponseToProto(resp), nil
}

type predictService struct {
	sluicev1.UnimplementedPredictServer
	s *Server
}

// open admits and sends one Predict call; the caller closes the
// exchange whatever the error.
func (x *predictService) open(ctx context.Context, req *sluicev1.PredictRequest) (*exchange, error) {
	rt, ok := x.s.byName(req.GetApp())
	if !ok {
		return x.s.open(ctx, "", streams.Errorf(streams.CodeNotFound, "no application %q", req.GetApp()))
	}
	ex, err := x.s.open(ctx, rt.app, nil)
	if err != nil {
		return ex, err
	}
	c := &call{rt: rt, timeout: req.GetTimeout().AsDuration(), env: grpcEnvelope(ctx, req.GetHeaders()), body: req.GetPayload(), model: grpcModel(ctx, req.GetHeaders())}
	c.env.ContentType, c.env.Model = req.GetContentType(), req.GetModel()
	return ex, ex.send(c)
}

func (x *predictService) Predict(ctx context.Context, req *sluicev1.PredictRequest) (*sluicev1.PredictResponse, error) {
	ex, err := x.open(ctx, req)
	defer ex.close()
	if err != nil {
		return nil, grpcError(ctx, err)
	}
	rep, err := ex.next()
	if err == nil && rep.Streamed() {
		err = ex.fail(streams.Errorf(streams.CodeInvalidArgument, "application %s streams its answer: call PredictStream", req.GetApp()))
	}
	if err != nil {
		return nil, grpcError(ctx, err)
	}
	return &sluicev1.PredictResponse{Payload: rep.Value, ContentType: rep.ContentType, Seq: -1, RequestId: ex.id()}, nil
}

func (x *predictService) PredictStream(req *sluicev1.PredictRequest, out grpc.ServerStreamingServer[sluicev1.PredictResponse]) error {
	ctx := out.Context()
	ex, err := x.open(ctx, req)
	defer ex.close()
	if err != nil {
		return grpcError(ctx, err)
	}
	for {
		rep, err := ex.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			err = ex.fail(out.Send(&sluicev1.PredictResponse{Payload: rep.Value, ContentType: rep.ContentType, Seq: rep.Seq, RequestId: ex.id()}))
		}
		if err != nil {
			return grpcError(ctx, err)
		}
	}
}

type appsService struct {
	sluicev1.UnimplementedApplicationsServer
	s *Server
}

func (x *appsService) Deploy(ctx context.Context, req *sluicev1.DeployRequest) (*sluicev1.DeployResponse, error) {
	apps, err := spec.Parse(cmp.Or(req.GetFileName(), "app.yaml"), req.GetYaml())
	if err != nil {
		return nil, grpcError(ctx, &streams.Error{Code: streams.CodeInvalidArgument, Msg: err.Error(), Err: err})
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	gens, err := x.s.cfg.Control.Store().Deploy(ctx, apps...)
	if err != nil {
		return nil, grpcError(ctx, controlError(err))
	}
	resp := &sluicev1.DeployResponse{}
	for _, a := range apps {
		resp.Deployed = append(resp.Deployed, a.Name)
		resp.Generations = append(resp.Generations, gens[a.Name])
	}
	return resp, nil
}

func (x *appsService) List(ctx context.Context, _ *sluicev1.ListRequest) (*sluicev1.ListResponse, error) {
	resp := &sluicev1.ListResponse{}
	for _, st := range x.s.cfg.Control.Apps(ctx) {
		resp.Applications = append(resp.Applications, appStatus(st))
	}
	if f := x.s.cfg.Nodes; f != nil {
		placed := f.Placed()
		for _, n := range f.Nodes() {
			resp.Nodes = append(resp.Nodes, nodeStatus(n, placed))
		}
	}
	return resp, nil
}

// nodeStatus is a node's report with what the placer holds of each GPU.
func nodeStatus(n placement.NodeStatus, placed map[string]placement.Share) *sluicev1.NodeStatus {
	out := &sluicev1.NodeStatus{
		Name: n.Name, Cpu: n.CPU, MemoryBytes: n.Memory, Driver: n.Driver, GpuProblem: n.GPUProblem,
		Models: n.Models, Time: n.At.Format(time.RFC3339Nano),
	}
	var device func(d gpu.Device) *sluicev1.GpuDevice
	device = func(d gpu.Device) *sluicev1.GpuDevice {
		g := &sluicev1.GpuDevice{
			Index: int32(d.Index), MigIndex: int32(d.MIGIndex), Uuid: d.UUID, Name: d.Name,
			MemoryTotalBytes: d.MemoryTotal, MemoryFreeBytes: d.MemoryFree, Utilization: int32(d.Utilization),
			Mig: d.MIG, Problem: d.Problem, PlacedFraction: placed[d.UUID].Fraction, PlacedMemoryBytes: placed[d.UUID].Memory,
		}
		for _, in := range d.Instances {
			g.Instances = append(g.Instances, device(in))
		}
		return g
	}
	for _, d := range n.GPUs {
		out.Gpus = append(out.Gpus, device(d))
	}
	return out
}

func (x *appsService) Get(ctx context.Context, req *sluicev1.GetRequest) (*sluicev1.ApplicationStatus, error) {
	for _, st := range x.s.cfg.Control.Apps(ctx) {
		if st.Name == req.GetName() {
			return appStatus(st), nil
		}
	}
	return nil, grpcError(ctx, streams.Errorf(streams.CodeNotFound, "no application %s", req.GetName()))
}

func (x *appsService) Delete(ctx context.Context, req *sluicev1.DeleteRequest) (*sluicev1.DeleteResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := x.s.cfg.Control.Store().Delete(ctx, req.GetName()); err != nil {
		return nil, grpcError(ctx, controlError(err))
	}
	return &sluicev1.DeleteResponse{Deleted: req.GetName()}, nil
}

// controlError classifies a controller error: the spec's fault, an
// unknown application, or the platform's (Kafka unreachable, say).
func controlError(err error) error {
	code := streams.CodeUnavailable
	switch {
	case errors.Is(err, appstore.ErrInvalid):
		code = streams.CodeInvalidArgument
	case errors.Is(err, appstore.ErrNotFound):
		code = streams.CodeNotFound
	}
	return &streams.Error{Code: code, Msg: err.Error(), Err: err}
}

func appStatus(st controller.AppStatus) *sluicev1.ApplicationStatus {
	out := &sluicev1.ApplicationStatus{Name: st.Name, RoutePrefix: st.RoutePrefix, Ingress: st.Ingress, Topics: st.Topics, Generation: st.Generation}
	if r := st.Rejected; r != nil {
		out.Rejected = &sluicev1.Rejection{Generation: r.Generation, Reason: r.Reason, Time: r.At.Format(time.RFC3339Nano)}
	}
	for _, d := range st.Deployments {
		ds := &sluicev1.DeploymentStatus{
			Name: d.Name, Handler: d.Handler, Group: d.Group,
			Replicas: int32(d.Replicas), Target: int32(d.Target), PartitionsAssigned: int32(d.Partitions),
			Processed: d.Processed, Failed: d.Failed, Ongoing: d.Ongoing, Lag: d.Lag, Error: d.Error,
			Revision: d.Revision, Updated: int32(d.Updated), Outdated: int32(d.Outdated),
		}
		for _, r := range d.Reports {
			ds.ReplicaReports = append(ds.ReplicaReports, &sluicev1.ReplicaReport{
				Instance: r.Instance, Revision: r.Revision, Generation: r.Generation, Ready: r.Ready, Partitions: int32(r.Partitions),
				Processed: r.Processed, Failed: r.Failed, Ongoing: r.Ongoing, Started: r.Started.Format(time.RFC3339Nano), Metrics: r.Metrics,
			})
		}
		for _, r := range d.Models {
			ds.ModelReplicas = append(ds.ModelReplicas, &sluicev1.ModelReplicaStatus{
				Replica: r.Replica, Loaded: r.Loaded, Loading: r.Loading, Failed: r.Failed, MemoryBytes: r.MemoryBytes,
				Hits: r.Hits, Misses: r.Misses, Loads: r.Loads, Evictions: r.Evictions, LoadFailures: r.Failures,
			})
		}
		if a := d.Autoscaler; a != nil {
			ds.Autoscaler = &sluicev1.AutoscalerStatus{
				MinReplicas: int32(a.Min), MaxReplicas: int32(a.Max), Current: int32(a.Current), Ready: int32(a.Ready),
				Lag: a.Lag, LagError: a.LagError, Problem: a.Problem, Last: scaleDecision(a.Last),
			}
			for _, h := range a.History {
				ds.Autoscaler.History = append(ds.Autoscaler.History, scaleDecision(h))
			}
		}
		for _, r := range d.Placements {
			rp := &sluicev1.ReplicaPlacement{Id: int32(r.ID), Node: r.Node, Cpu: r.CPU, MemoryBytes: r.Memory}
			for _, sh := range r.Shares {
				rp.Gpus = append(rp.Gpus, &sluicev1.GpuShare{Uuid: sh.UUID, Fraction: sh.Fraction, MemoryBytes: sh.Memory})
			}
			ds.Placements = append(ds.Placements, rp)
		}
		out.Deployments = append(out.Deployments, ds)
	}
	return out
}

func scaleDecision(d autoscaler.Decision) *sluicev1.ScaleDecision {
	return &sluicev1.ScaleDecision{
		Time: d.Time.Format(time.RFC3339Nano), From: int32(d.From), To: int32(d.To), Reason: d.Reason,
		Lag: d.Lag, Rate: d.Rate, Demand: d.Demand, Panic: d.Panic,
	}
}
