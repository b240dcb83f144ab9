package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/registry"
)

// front serves a gateway: gRPC on one listener, REST (OIP, app routes,
// and the API through grpc-gateway over a client connection to the gRPC
// server) on the other.
type front struct {
	http *http.Server
	grpc *grpc.Server
	conn *grpc.ClientConn
	done chan error // first serve failure
}

// listen binds both addresses, so a busy port fails before anything runs.
func listen(httpAddr, grpcAddr string) (hl, gl net.Listener, err error) {
	if hl, err = net.Listen("tcp", httpAddr); err != nil {
		return nil, nil, fmt.Errorf("listen http %s: %w", httpAddr, err)
	}
	if gl, err = net.Listen("tcp", grpcAddr); err != nil {
		hl.Close()
		return nil, nil, fmt.Errorf("listen grpc %s: %w", grpcAddr, err)
	}
	return hl, gl, nil
}

func startFront(ctx context.Context, gw *gateway.Server, hl, gl net.Listener, maxMsg int, more ...func(grpc.ServiceRegistrar)) (*front, error) {
	f := &front{grpc: grpc.NewServer(append(registry.BulkServerOptions(), gw.GRPCOptions()...)...), done: make(chan error, 2)}
	gw.Register(f.grpc)
	for _, register := range more {
		register(f.grpc)
	}
	go func() { f.done <- f.grpc.Serve(gl) }()
	conn, err := grpc.NewClient(gl.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
	if err != nil {
		f.grpc.Stop()
		hl.Close()
		return nil, fmt.Errorf("grpc-gateway connection: %w", err)
	}
	f.conn = conn
	api, err := gateway.APIHandler(ctx, conn)
	if err != nil {
		f.close()
		hl.Close()
		return nil, err
	}
	f.http = &http.Server{Handler: gw.Handler(api), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := f.http.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			f.done <- err
		}
	}()
	return f, nil
}

// close stops REST first, then gRPC (gracefully, bounded), then the
// internal connection.
func (f *front) close() {
	if f.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = f.http.Shutdown(ctx)
		cancel()
	}
	stopped := make(chan struct{})
	go func() { f.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		f.grpc.Stop()
	}
	if f.conn != nil {
		f.conn.Close()
	}
}
