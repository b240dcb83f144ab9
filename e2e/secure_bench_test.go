package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-serve/sluice/gateway/auth/authtest"
	"github.com/sluice-serve/sluice/gateway/certs/certstest"
	"github.com/sluice-serve/sluice/platform/cli"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
)

// bearerCreds sends one token on every gRPC call.
type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return true }

// startGateway runs `sluice gateway` with args beside the test platform
// until the benchmark ends, and waits until it answers.
func startGateway(b *testing.B, httpAddr, grpcAddr string, ready func() bool, args ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		done <- cli.Run(ctx, append([]string{"gateway", "--http", httpAddr, "--grpc", grpcAddr,
			"--brokers", strings.Join(plat.Brokers, ","), "--prefix", namer.Prefix()}, args...),
			cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry, Getenv: func(string) string { return "" }})
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("gateway: %v", err)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); !ready(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("gateway %v never answered", args)
		}
	}
}

// BenchmarkSecureGateway measures what TLS and authentication cost on
// the request path: the same one-hop application (faults, echo) through
// two `sluice gateway` instances on the same broker in the same run, one
// in clear text without authentication, one with TLS and bearer tokens
// (a token of --auth-file, and a JWT of --jwks-file, verified once and
// then served from the cache). REST over HTTP/1.1 keep-alive and gRPC
// Predict over one HTTP/2 connection, at concurrency 1 and 64. Each
// secured run reports its p50, throughput and CPU time per call (of this
// whole process: client, gateways, the embedded broker) as ratios of the
// clear-text run's (tls-token_x_plain_p50, _x_plain_rps, _x_plain_cpu,
// and the same for tls-jwt). On a shared machine the CPU time per call
// is the steadier figure: other processes' load moves latency and
// throughput, not the work a call takes.
//
//	go test ./e2e -run '^$' -bench SecureGateway -benchtime 8000x
func BenchmarkSecureGateway(b *testing.B) {
	dir := b.TempDir()
	ca := certstest.NewCA(b, dir, "bench")
	cert, key := ca.Issue(b, dir, "server", "127.0.0.1")
	keys := authtest.NewKeys(b)
	jwks := filepath.Join(dir, "jwks.json")
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(jwks, keys.JWKS, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte(authFile()), 0o600); err != nil {
		b.Fatal(err)
	}
	jwt := keys.RSA.Mint(b, map[string]any{"iss": "https://idp.bench", "aud": "sluice", "sub": "bench", "scope": "infer", "exp": time.Now().Add(time.Hour).Unix()})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tlsc := &tls.Config{RootCAs: roots}
	plainHTTP, plainGRPC, secureHTTP, secureGRPC := freeAddr(b), freeAddr(b), freeAddr(b), freeAddr(b)
	plainc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	securec := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, TLSClientConfig: tlsc}}
	readyAt := func(c *http.Client, u string) func() bool {
		return func() bool {
			resp, err := c.Get(u)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}
	}
	startGateway(b, plainHTTP, plainGRPC, readyAt(plainc, "http://"+plainHTTP+"/v2/health/ready"))
	startGateway(b, secureHTTP, secureGRPC, readyAt(securec, "https://"+secureHTTP+"/v2/health/ready"),
		"--tls-cert", cert, "--tls-key", key, "--auth-file", tokens,
		"--jwks-file", jwks, "--jwt-issuer", "https://idp.bench", "--jwt-audience", "sluice")

	rest := func(c *http.Client, u, token string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{"echo":"x"}`))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	rpc := func(addr string, opts ...grpc.DialOption) func(context.Context) error {
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		predict := sluicev1.NewPredictClient(conn)
		return func(ctx context.Context) error {
			_, err := predict.Predict(ctx, &sluicev1.PredictRequest{App: "faults", Payload: []byte(`{"echo":"x"}`)})
			return err
		}
	}
	tlsCreds := grpc.WithTransportCredentials(credentials.NewTLS(tlsc))
	type workload struct {
		name string
		fn   func(context.Context) error
	}
	groups := [][]workload{{
		{"rest/plain", rest(plainc, "http://"+plainHTTP+"/faults", "")},
		{"rest/tls-token", rest(securec, "https://"+secureHTTP+"/faults", "secret-infer")},
		{"rest/tls-jwt", rest(securec, "https://"+secureHTTP+"/faults", jwt)},
	}, {
		{"grpc/plain", rpc(plainGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))},
		{"grpc/tls-token", rpc(secureGRPC, tlsCreds, grpc.WithPerRPCCredentials(bearerCreds("secret-infer")))},
		{"grpc/tls-jwt", rpc(secureGRPC, tlsCreds, grpc.WithPerRPCCredentials(bearerCreds(jwt)))},
	}}
	// Each group's workloads take turns, in an order that rotates every
	// round, so that a slower moment of a shared machine falls on each.
	const rounds = 4
	for _, conc := range []int{1, 64} {
		for _, g := range groups {
			b.Run(fmt.Sprintf("%s/c%d", strings.Split(g[0].name, "/")[0], conc), func(b *testing.B) {
				lat := make([][]time.Duration, len(g))
				spent, cpu := make([]time.Duration, len(g)), make([]time.Duration, len(g))
				per := max(b.N/rounds, 1)
				for r := range rounds {
					for k := range g {
						i := (k + r) % len(g)
						before := cpuTime()
						l, took, err := measure(per, conc, g[i].fn)
						if err != nil {
							b.Fatalf("%s: %v", g[i].name, err)
						}
						lat[i], spent[i], cpu[i] = append(lat[i], l...), spent[i]+took, cpu[i]+cpuTime()-before
					}
				}
				var plainP50, plainRPS, plainCPU float64
				for i, w := range g {
					slices.Sort(lat[i])
					p50 := float64(lat[i][len(lat[i])/2]) / float64(time.Millisecond)
					rps := float64(len(lat[i])) / spent[i].Seconds()
					perCall := float64(cpu[i].Microseconds()) / float64(len(lat[i]))
					mode := strings.Split(w.name, "/")[1]
					b.ReportMetric(p50, mode+"_p50_ms")
					b.ReportMetric(rps, mode+"_req/s")
					b.ReportMetric(perCall, mode+"_cpu_us/req")
					if i == 0 {
						plainP50, plainRPS, plainCPU = p50, rps, perCall
						continue
					}
					b.ReportMetric(p50/plainP50, mode+"_x_plain_p50")
					b.ReportMetric(rps/plainRPS, mode+"_x_plain_rps")
					b.ReportMetric(perCall/plainCPU, mode+"_x_plain_cpu")
				}
			})
		}
	}
}

// cpuTime is the CPU time this process has used, user and system: the
// client, both gateways and, on the embedded broker, Kafka too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure makes n calls from conc goroutines after a short warm-up: each
// call's latency, and the time all took.
func measure(n, conc int, fn func(context.Context) error) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for range 20 {
		if err := fn(ctx); err != nil {
			return nil, 0, err
		}
	}
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				t := time.Now()
				if err := fn(ctx); err != nil {
					failed.Store(err)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return nil, 0, err
	}
	return lat, took, nil
}
