package cli

import (
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// Both gRPC addresses of a started platform answer grpc.health.v1 as
// /v2/health/ready does (SERVING once ready, NOT_SERVING when not), and
// list their services through server reflection.
func TestGRPCHealthAndReflection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform")
	}
	t.Parallel()
	d := startTestDev(t)
	for _, addr := range []string{d.GRPCAddr, d.Addr} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		check := func(want healthpb.HealthCheckResponse_ServingStatus) {
			t.Helper()
			resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
			if err != nil || resp.GetStatus() != want {
				t.Errorf("%s: health %v, %v; want %v", addr, resp.GetStatus(), err, want)
			}
		}
		check(healthpb.HealthCheckResponse_SERVING)
		d.front.setReady(false)
		check(healthpb.HealthCheckResponse_NOT_SERVING)
		d.front.setReady(true)
		check(healthpb.HealthCheckResponse_SERVING)

		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
		}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: reflection: %v", addr, err)
		}
		_ = stream.CloseSend()
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
			"inference.GRPCInferenceService", "sluice.v1.Applications", "sluice.v1.Predict",
			"sluice.v1.Models", "sluice.v1.Code"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s: reflection lists %v, without %s", addr, names, want)
			}
		}
		// A client can resolve a service's descriptors by name.
		stream, err = reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "sluice.v1.Applications"},
		}); err != nil {
			t.Fatal(err)
		}
		if resp, err := stream.Recv(); err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
			t.Errorf("%s: descriptors of sluice.v1.Applications: %v, %v", addr, resp, err)
		}
		_ = stream.CloseSend()
	}
}
