package registry

import (
	"context"
	"encoding/json"
	"io"

	"google.golang.org/grpc"

	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/streams"
)

// codeService is the Code gRPC service: code bundles, as Service is
// models.
type codeService struct {
	sluicev1.UnimplementedCodeServer
	r        *Registry
	toStatus func(context.Context, error) error
}

// PushBundle reads the header, then feeds the chunks into PublishBundle.
func (s *codeService) PushBundle(stream grpc.ClientStreamingServer[sluicev1.PushBundleRequest, sluicev1.BundleVersion]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return s.toStatus(ctx, streams.Errorf(streams.CodeInvalidArgument, "push: no header: %v", err))
	}
	h := first.GetHeader()
	if h == nil {
		return s.toStatus(ctx, streams.Errorf(streams.CodeInvalidArgument, "push: the first message must be the header"))
	}
	u := BundleUpload{Name: h.GetName(), Format: h.GetFormat(), Manifest: json.RawMessage(h.GetManifest()), Image: h.GetImage(),
		Files: filesFromProto(h.GetFiles()), Alias: h.GetAlias()}
	pr := receiveChunks(stream.Recv)
	v, err := s.r.PublishBundle(ctx, u, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	b, _ := s.r.Bundle(v.Bundle)
	return stream.SendAndClose(bundleVersionToProto(v, b))
}

func (s *codeService) ListBundles(context.Context, *sluicev1.ListBundlesRequest) (*sluicev1.ListBundlesResponse, error) {
	resp := &sluicev1.ListBundlesResponse{}
	for _, b := range s.r.Bundles() {
		resp.Bundles = append(resp.Bundles, bundleToProto(b))
	}
	return resp, nil
}

func (s *codeService) GetBundle(ctx context.Context, req *sluicev1.GetBundleRequest) (*sluicev1.Bundle, error) {
	b, err := s.r.Bundle(req.GetName())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return bundleToProto(b), nil
}

// lookup resolves a request's name and version (a number, an alias, or
// empty for the highest).
func (s *codeService) lookup(name, version string) (*BundleVersion, *Bundle, error) {
	b, err := s.r.Bundle(name)
	if err != nil {
		return nil, nil, err
	}
	v, err := b.Lookup(BundleSelector(version))
	return v, b, err
}

func (s *codeService) GetBundleVersion(ctx context.Context, req *sluicev1.GetBundleVersionRequest) (*sluicev1.BundleVersion, error) {
	v, b, err := s.lookup(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return bundleVersionToProto(v, b), nil
}

func (s *codeService) SetBundleAlias(ctx context.Context, req *sluicev1.SetBundleAliasRequest) (*sluicev1.Bundle, error) {
	b, err := s.r.SetBundleAlias(ctx, req.GetName(), req.GetAlias(), req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return bundleToProto(b), nil
}

func (s *codeService) DeleteBundleVersion(ctx context.Context, req *sluicev1.DeleteBundleVersionRequest) (*sluicev1.Bundle, error) {
	b, err := s.r.DeleteBundleVersion(ctx, req.GetName(), req.GetVersion(), req.GetForce())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return bundleToProto(b), nil
}

// PullBundle sends the version, then every file's content in chunks.
func (s *codeService) PullBundle(req *sluicev1.PullBundleRequest, stream grpc.ServerStreamingServer[sluicev1.PullBundleResponse]) error {
	ctx := stream.Context()
	v, b, err := s.lookup(req.GetName(), req.GetVersion())
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if err := stream.Send(&sluicev1.PullBundleResponse{Part: &sluicev1.PullBundleResponse_Header{Header: bundleVersionToProto(v, b)}}); err != nil {
		return err
	}
	err = sendFiles(ctx, v.Files, func(f File) (io.ReadCloser, error) { return s.r.OpenBundle(ctx, v, f) }, func(c []byte) error {
		return stream.Send(&sluicev1.PullBundleResponse{Part: &sluicev1.PullBundleResponse_Chunk{Chunk: c}})
	})
	if err != nil {
		return s.toStatus(ctx, err)
	}
	return nil
}

func bundleVersionToProto(v *BundleVersion, b *Bundle) *sluicev1.BundleVersion {
	pv := &sluicev1.BundleVersion{Name: v.Bundle, Version: v.Version, Format: v.Format, Manifest: string(v.Manifest), Image: v.Image,
		Files: filesToProto(v.Files), Size: v.Size, CreatedMs: v.Created.UnixMilli()}
	if b != nil {
		pv.Aliases = b.AliasesOf(v.Version)
	}
	return pv
}

func bundleToProto(b *Bundle) *sluicev1.Bundle {
	pb := &sluicev1.Bundle{Name: b.Name, Aliases: b.Aliases}
	for i := range b.Versions {
		pb.Versions = append(pb.Versions, bundleVersionToProto(&b.Versions[i], b))
	}
	return pb
}
