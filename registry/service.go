package registry

import (
	"context"
	"errors"
	"io"
	"net/http"

	"google.golang.org/grpc"

	"github.com/sluice-serve/sluice/platform/spec"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/streams"
)

// Service is the registry's gRPC API: the Models service, and the Code
// service (codeService) over the same registry. toStatus turns errors into
// gRPC statuses (the gateway owns that mapping).
type Service struct {
	sluicev1.UnimplementedModelsServer
	r        *Registry
	toStatus func(context.Context, error) error
}

// NewService wraps a registry for gRPC.
func NewService(r *Registry, toStatus func(context.Context, error) error) *Service {
	return &Service{r: r, toStatus: toStatus}
}

// Register adds the Models and Code services to a gRPC server.
func (s *Service) Register(srv grpc.ServiceRegistrar) {
	sluicev1.RegisterModelsServer(srv, s)
	sluicev1.RegisterCodeServer(srv, &codeService{r: s.r, toStatus: s.toStatus})
}

// chunkSize is the size of the pieces a pull streams.
const chunkSize = 4 << 20

// Flow-control windows for bulk streams: gRPC's default 64 KiB window
// holds a gigabyte pull to a fraction of what loopback carries.
const (
	bulkWindow     = 16 << 20
	bulkConnWindow = 64 << 20
)

// BulkServerOptions are the flow-control windows artifact streams need;
// the server's message limit must be at least MaxChunk.
func BulkServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(bulkWindow), grpc.InitialConnWindowSize(bulkConnWindow)}
}

// BulkHTTP2Config carries BulkServerOptions' windows to a gRPC server
// reached through net/http's HTTP/2 server (grpc.Server.ServeHTTP), whose
// windows net/http, not gRPC, sets. (http.HTTP2Config's documentation
// says under 4 MiB; Go 1.26 takes any value up to 2 GiB - 1, and a value
// it refused would fall back to its 1 MiB default.)
func BulkHTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{MaxReceiveBufferPerStream: bulkWindow, MaxReceiveBufferPerConnection: bulkConnWindow}
}

// MaxChunk is the largest push or pull message.
const MaxChunk = 2 * chunkSize

// BulkDialOptions are the client options artifact streams need.
func BulkDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithInitialWindowSize(bulkWindow), grpc.WithInitialConnWindowSize(bulkConnWindow),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxChunk), grpc.MaxCallSendMsgSize(MaxChunk))}
}

// PushVersion reads the header, then feeds the chunks through a pipe into
// Publish, so at most a chunk or two are in memory at once.
func (s *Service) PushVersion(stream grpc.ClientStreamingServer[sluicev1.PushVersionRequest, sluicev1.ModelVersion]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return s.toStatus(ctx, streams.Errorf(streams.CodeInvalidArgument, "push: no header: %v", err))
	}
	h := first.GetHeader()
	if h == nil {
		return s.toStatus(ctx, streams.Errorf(streams.CodeInvalidArgument, "push: the first message must be the header"))
	}
	u := Upload{Model: h.GetModel(), Version: h.GetVersion(), Format: h.GetFormat(), Labels: h.GetLabels(), Alias: h.GetAlias(),
		Inputs: tensorsFromProto(h.GetInputs()), Outputs: tensorsFromProto(h.GetOutputs())}
	u.Files = filesFromProto(h.GetFiles())
	pr := receiveChunks(stream.Recv)
	v, err := s.r.Publish(ctx, u, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	m, _ := s.r.Model(v.Model)
	return stream.SendAndClose(versionToProto(v, m))
}

func (s *Service) ListModels(ctx context.Context, _ *sluicev1.ListModelsRequest) (*sluicev1.ListModelsResponse, error) {
	resp := &sluicev1.ListModelsResponse{}
	for _, m := range s.r.Models() {
		resp.Models = append(resp.Models, modelToProto(m))
	}
	return resp, nil
}

func (s *Service) GetModel(ctx context.Context, req *sluicev1.GetModelRequest) (*sluicev1.Model, error) {
	m, err := s.r.Model(req.GetName())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return modelToProto(m), nil
}

func (s *Service) GetVersion(ctx context.Context, req *sluicev1.GetVersionRequest) (*sluicev1.ModelVersion, error) {
	m, err := s.r.Model(req.GetModel())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	v, err := m.Lookup(req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return versionToProto(v, m), nil
}

func (s *Service) SetAlias(ctx context.Context, req *sluicev1.SetAliasRequest) (*sluicev1.Model, error) {
	m, err := s.r.SetAlias(ctx, req.GetModel(), req.GetAlias(), req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return modelToProto(m), nil
}

func (s *Service) DeleteVersion(ctx context.Context, req *sluicev1.DeleteVersionRequest) (*sluicev1.Model, error) {
	m, err := s.r.DeleteVersion(ctx, req.GetModel(), req.GetVersion(), req.GetForce())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return modelToProto(m), nil
}

// PullVersion sends the manifest, then every file's content in chunks.
func (s *Service) PullVersion(req *sluicev1.PullVersionRequest, stream grpc.ServerStreamingServer[sluicev1.PullVersionResponse]) error {
	ctx := stream.Context()
	m, err := s.r.Model(req.GetModel())
	if err != nil {
		return s.toStatus(ctx, err)
	}
	v, err := m.Lookup(req.GetVersion())
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if err := stream.Send(&sluicev1.PullVersionResponse{Part: &sluicev1.PullVersionResponse_Header{Header: versionToProto(v, m)}}); err != nil {
		return err
	}
	err = sendFiles(ctx, v.Files, func(f File) (io.ReadCloser, error) { return s.r.Open(ctx, v, f) }, func(b []byte) error {
		return stream.Send(&sluicev1.PullVersionResponse{Part: &sluicev1.PullVersionResponse_Chunk{Chunk: b}})
	})
	if err != nil {
		return s.toStatus(ctx, err)
	}
	return nil
}

// chunkMessage is a push stream's message: a header first, then chunks.
type chunkMessage interface{ GetChunk() []byte }

// receiveChunks feeds the chunks that recv returns into a pipe, which
// Publish reads, so at most a chunk or two are in memory at once. The
// caller closes the reader when Publish returns, which ends the feeding.
func receiveChunks[M chunkMessage](recv func() (M, error)) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		for {
			msg, err := recv()
			if errors.Is(err, io.EOF) {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(streams.Errorf(streams.CodeCanceled, "push interrupted: %v", err))
				return
			}
			if _, err := pw.Write(msg.GetChunk()); err != nil {
				return // Publish stopped reading: it has its error
			}
		}
	}()
	return pr
}

// sendFiles sends every file's content, in order, in chunks.
func sendFiles(ctx context.Context, files []File, open func(File) (io.ReadCloser, error), send func([]byte) error) error {
	buf := make([]byte, chunkSize)
	for _, f := range files {
		rc, err := open(f)
		if err != nil {
			return err
		}
		err = SendChunks(rc, buf, send)
		rc.Close()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return streams.Errorf(streams.CodeUnavailable, "read %s: %v", f.Path, err)
		}
	}
	return nil
}

// SendChunks reads r to its end in pieces of len(buf), handing each to
// send: how both ends of an artifact stream cut it.
func SendChunks(r io.Reader, buf []byte, send func([]byte) error) error {
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if serr := send(buf[:n]); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func filesFromProto(fs []*sluicev1.ArtifactFile) []File {
	var out []File
	for _, f := range fs {
		out = append(out, File{Path: f.GetPath(), Size: f.GetSize(), SHA256: f.GetSha256()})
	}
	return out
}

func filesToProto(fs []File) []*sluicev1.ArtifactFile {
	var out []*sluicev1.ArtifactFile
	for _, f := range fs {
		out = append(out, &sluicev1.ArtifactFile{Path: f.Path, Size: f.Size, Sha256: f.SHA256})
	}
	return out
}

func tensorsFromProto(ts []*sluicev1.TensorSignature) []spec.TensorSpec {
	var out []spec.TensorSpec
	for _, t := range ts {
		out = append(out, spec.TensorSpec{Name: t.GetName(), Datatype: t.GetDatatype(), Shape: t.GetShape()})
	}
	return out
}

func tensorsToProto(ts []spec.TensorSpec) []*sluicev1.TensorSignature {
	var out []*sluicev1.TensorSignature
	for _, t := range ts {
		out = append(out, &sluicev1.TensorSignature{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	return out
}

func versionToProto(v *Version, m *Model) *sluicev1.ModelVersion {
	pv := &sluicev1.ModelVersion{Model: v.Model, Version: v.Version, Format: v.Format, Labels: v.Labels,
		Inputs: tensorsToProto(v.Inputs), Outputs: tensorsToProto(v.Outputs), Size: v.Size, CreatedMs: v.Created.UnixMilli(), Files: filesToProto(v.Files)}
	if m != nil {
		pv.Aliases = m.AliasesOf(v.Version)
	}
	return pv
}

func modelToProto(m *Model) *sluicev1.Model {
	pm := &sluicev1.Model{Name: m.Name, Aliases: m.Aliases}
	for i := range m.Versions {
		pm.Versions = append(pm.Versions, versionToProto(&m.Versions[i], m))
	}
	return pm
}
