package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/gateway/certs"
	"github.com/sluice-serve/sluice/registry"
)

// front serves a gateway: gRPC on one listener; REST (OIP, app routes,
// and the API through grpc-gateway over a client connection to the gRPC
// server) and gRPC again on the other.
//
// One address serves REST and gRPC, so that every client command finds
// the platform with the same --addr, `sluice models` included, whose
// pushes and pulls stream over gRPC: the HTTP listener speaks HTTP/1.1
// and HTTP/2 without TLS (prior knowledge, as every gRPC client sends
// it) or, with --tls-cert, over TLS (h2 chosen by ALPN), and a request with content-type application/grpc goes to the
// gRPC server through grpc.Server.ServeHTTP. The alternative, a REST
// endpoint telling the CLI the gRPC address, would need two ports open
// through every firewall, tunnel and port-forward, and would advertise
// the address the server bound (127.0.0.1, 0.0.0.0), not the one the
// client reached. ServeHTTP runs on net/http's HTTP/2 server, not
// gRPC-go's own transport; with the bulk windows carried over
// (registry.BulkHTTP2Config) a 256 MiB push through the HTTP port is
// about as fast as through the gRPC port (BenchmarkModelsPushPorts,
// docs/ARCHITECTURE.md). The gRPC listener stays, for clients that
// expect it (tritonclient's examples, grpc-gateway's own connection).
//
// Both ports also serve grpc.health.v1 (the whole server, service name
// "", NOT_SERVING until setReady(true), as /v2/health/ready) for gRPC
// probes and load balancers, and server reflection (grpcurl, Postman).
type front struct {
	http   *http.Server
	grpc   *grpc.Server
	health *health.Server
	gw     *gateway.Server
	conn   *grpc.ClientConn
	done   chan error // first serve failure
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

// startFront serves gw on hl (REST and gRPC) and gl (gRPC). With
// tlsFiles both listeners speak TLS only, with the certificate in force
// at each handshake; grpc-gateway's connection to the gRPC server then
// stays inside the process (an in-memory listener), so it needs neither
// a certificate nor a port of its own.
func startFront(ctx context.Context, gw *gateway.Server, hl, gl net.Listener, tlsFiles *certs.Keeper, more ...func(grpc.ServiceRegistrar)) (*front, error) {
	lim := gw.Limits()
	maxMsg := int(lim.MaxBody)
	f := &front{grpc: grpc.NewServer(append(registry.BulkServerOptions(), gw.GRPCOptions()...)...),
		health: health.NewServer(), gw: gw, done: make(chan error, 3)}
	gw.Register(f.grpc)
	for _, register := range more {
		register(f.grpc)
	}
	f.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(f.grpc, f.health)
	reflection.Register(f.grpc)
	target, dial := gl.Addr().String(), []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tlsFiles != nil {
		// gRPC's own transport over a TLS listener: the handshake (ALPN
		// h2) happens on the connection's first read.
		gl = tls.NewListener(gl, tlsFiles.ServerConfig("h2"))
		inside := bufconn.Listen(1 << 20)
		go func() { f.done <- f.grpc.Serve(inside) }()
		target = "passthrough:///in-process"
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return inside.DialContext(ctx) }))
	}
	go func() { f.done <- f.grpc.Serve(gl) }()
	conn, err := grpc.NewClient(target, append(dial,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))...)
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
	f.http = newHTTPServer(grpcOrREST(f.grpc, gw.Handler(api)), lim)
	serve := func() error { return f.http.Serve(hl) }
	if tlsFiles != nil {
		f.http.TLSConfig = tlsFiles.ServerConfig("h2", "http/1.1")
		serve = func() error { return f.http.ServeTLS(hl, "", "") }
	}
	go func() {
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			f.done <- err
		}
	}()
	return f, nil
}

// grpcOrREST sends gRPC requests to g, every other request to rest.
func grpcOrREST(g *grpc.Server, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// newHTTPServer serves h over HTTP/1.1 and HTTP/2, with or without TLS, with the
// flow-control windows artifact streams need. Headers must arrive within
// lim.HeaderTimeout, and idle keep-alive connections are closed after
// lim.IdleTimeout: a client that opens thousands holds no descriptors for
// ever. Bodies are bounded per request by the gateway (408).
func newHTTPServer(h http.Handler, lim gateway.Limits) *http.Server {
	lim = lim.WithDefaults()
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // over TLS, when the listener has it
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, ReadHeaderTimeout: lim.HeaderTimeout, IdleTimeout: lim.IdleTimeout, Protocols: &protocols, HTTP2: registry.BulkHTTP2Config()}
}

// limitFlags declares the gateway's limits as flags; the function it
// returns reads them once parsed.
func limitFlags(fs *flagSet) func() gateway.Limits {
	maxInFlight := fs.Int("max-in-flight", gateway.DefaultMaxInFlight, "requests waiting at once, REST and gRPC together; past it 429 / RESOURCE_EXHAUSTED")
	maxBody := fs.Int64("max-body", gateway.DefaultMaxBody, "request size limit in bytes; past it 413 / INVALID_ARGUMENT")
	maxTimeout := fs.Duration("max-timeout", gateway.DefaultMaxTimeout, "cap on a caller's timeout (a longer one is cut to it)")
	bodyIdle := fs.Duration("body-idle-timeout", gateway.DefaultBodyIdleTimeout, "a REST body that sends nothing for this long is cut off with 408")
	body := fs.Duration("body-timeout", gateway.DefaultBodyTimeout, "a REST body not all received in this time is cut off with 408")
	header := fs.Duration("header-timeout", gateway.DefaultHeaderTimeout, "a request's headers must arrive within this time")
	idle := fs.Duration("idle-timeout", gateway.DefaultIdleTimeout, "keep-alive connections that carry no request are closed after this time")
	return func() gateway.Limits {
		return gateway.Limits{MaxInFlight: *maxInFlight, MaxBody: *maxBody, MaxTimeout: *maxTimeout,
			BodyIdleTimeout: *bodyIdle, BodyTimeout: *body, HeaderTimeout: *header, IdleTimeout: *idle}
	}
}

// setReady marks the gateway ready (or not) for REST's /v2/health/ready
// and gRPC's grpc.health.v1 alike.
func (f *front) setReady(ready bool) {
	f.gw.SetReady(ready)
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		status = healthpb.HealthCheckResponse_SERVING
	}
	f.health.SetServingStatus("", status)
}

// close stops the HTTP listener first (REST, and gRPC through it), then
// the gRPC listener (gracefully, bounded), then the internal connection.
func (f *front) close() {
	// Not ready while draining, over REST and to every gRPC health watcher.
	f.gw.SetReady(false)
	f.health.Shutdown()
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
