package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// bearerCreds sends one token on every gRPC call.
type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return true }

// securityFiles are the secured gateway's files and what its clients
// send: a certificate of a test CA, a token file (authFile's tokens) and
// a JWKS, and an RS256 JWT holding infer.
type securityFiles struct {
	args []string // the secured gateway's flags
	tlsc *tls.Config
	jwt  string
}

func newSecurityFiles(b *testing.B) securityFiles {
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
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return securityFiles{
		args: []string{"--tls-cert", cert, "--tls-key", key, "--auth-file", tokens,
			"--jwks-file", jwks, "--jwt-issuer", "https://idp.bench", "--jwt-audience", "sluice"},
		tlsc: &tls.Config{RootCAs: roots},
		jwt:  keys.RSA.Mint(b, map[string]any{"iss": "https://idp.bench", "aud": "sluice", "sub": "bench", "scope": "infer", "exp": time.Now().Add(time.Hour).Unix()}),
	}
}

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
	waitReady(b, ready)
}

func waitReady(b *testing.B, ready func() bool) {
	for deadline := time.Now().Add(60 * time.Second); !ready(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("a gateway never answered")
		}
	}
}

func readyAt(c *http.Client, u string) func() bool {
	return func() bool {
		resp, err := c.Get(u)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
}

// gatewayPair is a clear-text gateway without authentication and a
// secured one serving the same application, and how to read each one's
// CPU time.
type gatewayPair struct {
	plainHTTP, plainGRPC, secureHTTP, secureGRPC string
	app, body                                    string // an application route /<app> and Predict's app, its body
	sec                                          securityFiles
	cpu                                          [2]func() time.Duration // the clear-text gateway's, the secured one's
}

// compareGateways sends the same calls through both gateways, REST
// (HTTP/1.1 keep-alive) and gRPC Predict over one HTTP/2 connection, at
// concurrency 1 and 64, the workloads taking turns in a rotating order
// over four rounds, so that a slower moment of a shared machine falls on
// each. Each secured row reports its p50, throughput and CPU time per
// call as ratios of the clear-text row's (_x_plain_p50, _x_plain_rps,
// _x_plain_cpu).
func compareGateways(b *testing.B, p gatewayPair) {
	plainc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	securec := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, TLSClientConfig: p.sec.tlsc}}
	rest := func(c *http.Client, u, token string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(p.body))
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
			_, err := predict.Predict(ctx, &sluicev1.PredictRequest{App: p.app, Payload: []byte(p.body)})
			return err
		}
	}
	tlsCreds := grpc.WithTransportCredentials(credentials.NewTLS(p.sec.tlsc))
	type workload struct {
		name string
		fn   func(context.Context) error
	}
	groups := [][]workload{{
		{"rest/plain", rest(plainc, "http://"+p.plainHTTP+"/"+p.app, "")},
		{"rest/tls-token", rest(securec, "https://"+p.secureHTTP+"/"+p.app, "secret-infer")},
		{"rest/tls-jwt", rest(securec, "https://"+p.secureHTTP+"/"+p.app, p.sec.jwt)},
	}, {
		{"grpc/plain", rpc(p.plainGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))},
		{"grpc/tls-token", rpc(p.secureGRPC, tlsCreds, grpc.WithPerRPCCredentials(bearerCreds("secret-infer")))},
		{"grpc/tls-jwt", rpc(p.secureGRPC, tlsCreds, grpc.WithPerRPCCredentials(bearerCreds(p.sec.jwt)))},
	}}
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
						cpuOf := p.cpu[min(i, 1)]
						before := cpuOf()
						l, took, err := measure(per, conc, g[i].fn)
						if err != nil {
							b.Fatalf("%s: %v", g[i].name, err)
						}
						lat[i], spent[i], cpu[i] = append(lat[i], l...), spent[i]+took, cpu[i]+cpuOf()-before
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

// BenchmarkSecureGateway measures what TLS and authentication cost on
// the request path: the same one-hop application (faults, echo) through
// two `sluice gateway` instances run in this process beside the e2e
// platform, one in clear text without authentication, one with TLS and
// bearer tokens (a token of --auth-file, and a JWT of --jwks-file,
// verified once and then served from the cache). The CPU time per call
// is this whole process's (client, both gateways, the embedded broker):
// BenchmarkSecureGatewayProcesses measures each gateway's alone.
//
//	go test ./e2e -run '^$' -bench 'SecureGateway$' -benchtime 8000x
func BenchmarkSecureGateway(b *testing.B) {
	sec := newSecurityFiles(b)
	p := gatewayPair{plainHTTP: freeAddr(b), plainGRPC: freeAddr(b), secureHTTP: freeAddr(b), secureGRPC: freeAddr(b),
		app: "faults", body: `{"echo":"x"}`, sec: sec, cpu: [2]func() time.Duration{cpuTime, cpuTime}}
	startGateway(b, p.plainHTTP, p.plainGRPC, readyAt(&http.Client{}, "http://"+p.plainHTTP+"/v2/health/ready"))
	startGateway(b, p.secureHTTP, p.secureGRPC, readyAt(&http.Client{Transport: &http.Transport{TLSClientConfig: sec.tlsc}}, "https://"+p.secureHTTP+"/v2/health/ready"), sec.args...)
	compareGateways(b, p)
}

// BenchmarkSecureGatewayProcesses is BenchmarkSecureGateway on the
// production topology: `sluice dev` running bench's no-op (one hop) as
// a process, and the two gateways as `sluice gateway` processes on its
// broker, each one's CPU time read from /proc: what TLS and the token
// check cost the gateway itself.
//
//	go test ./e2e -run '^$' -bench SecureGatewayProcesses -benchtime 8000x
func BenchmarkSecureGatewayProcesses(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/sluice").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	sec := newSecurityFiles(b)
	start := func(args ...string) (int, []string) { return startSluice(b, bin, nil, args...) }
	noop, err := filepath.Abs("../bench/sluice/noop.yaml")
	if err != nil {
		b.Fatal(err)
	}
	_, bs := start("dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--builtin=false", "-f", noop)
	p := gatewayPair{plainHTTP: freeAddr(b), plainGRPC: freeAddr(b), secureHTTP: freeAddr(b), secureGRPC: freeAddr(b),
		app: "noop", body: `{"x":1}`, sec: sec}
	plainPid, _ := start("gateway", "--http", p.plainHTTP, "--grpc", p.plainGRPC, "--brokers", strings.Join(bs, ","))
	securePid, _ := start(append([]string{"gateway", "--http", p.secureHTTP, "--grpc", p.secureGRPC, "--brokers", strings.Join(bs, ",")}, sec.args...)...)
	p.cpu = [2]func() time.Duration{func() time.Duration { return procCPU(b, plainPid) }, func() time.Duration { return procCPU(b, securePid) }}
	waitReady(b, readyAt(&http.Client{}, "http://"+p.plainHTTP+"/v2/health/ready"))
	waitReady(b, readyAt(&http.Client{Transport: &http.Transport{TLSClientConfig: sec.tlsc}}, "https://"+p.secureHTTP+"/v2/health/ready"))
	compareGateways(b, p)
}

// readyBrokers finds the brokers in a started sluice process's ready line.
var readyBrokers = regexp.MustCompile(`\(brokers \[([^\]]+)\]\)`)

// startSluice starts `bin args...` with env added, stopped when the
// benchmark ends, and waits for its ready line: its pid and the brokers
// it names.
func startSluice(b *testing.B, bin string, env []string, args ...string) (pid int, brokers []string) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = b.TempDir()
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := readyBrokers.FindStringSubmatch(sc.Text()); m != nil {
				lines <- m[1]
			}
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok {
			b.Fatalf("sluice %v exited before it was ready", args)
		}
		go func() { // keep the pipe drained
			for range lines {
			}
		}()
		return cmd.Process.Pid, strings.Fields(l)
	case <-time.After(2 * time.Minute):
		b.Fatalf("sluice %v not ready", args)
	}
	return 0, nil
}

// BenchmarkSecurePath is the whole secured path against the whole clear
// one, in one run: two embedded brokers in this process, one in clear
// text, one with a TLS listener taking SCRAM-SHA-512 only; on each a
// `sluice dev --brokers` process running bench's no-op (one hop) as a
// replica process, and a `sluice gateway` process in front. The clear
// side has no authentication; on the secured one the gateway serves TLS
// with tokens and JWTs, and every Kafka client (gateway, dev, replica)
// speaks TLS + SCRAM. Rows and ratios as BenchmarkSecureGateway's; the
// CPU per call is each gateway process's.
//
//	go test ./e2e -run '^$' -bench SecurePath -benchtime 8000x
func BenchmarkSecurePath(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/sluice").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	sec := newSecurityFiles(b)
	plainBroker, err := streams.StartEmbedded(0, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(plainBroker.Close)
	dir := b.TempDir()
	files, err := kafkaauth.SelfSigned(dir, "127.0.0.1", "localhost")
	if err != nil {
		b.Fatal(err)
	}
	tlsOpt, err := streams.WithTLS(files.Cert, files.Key, "")
	if err != nil {
		b.Fatal(err)
	}
	password := "pw-" + streams.Instance()
	secureBroker, err := streams.StartEmbedded(0, "", tlsOpt, streams.WithSASLUser(kafkaauth.ScramSHA512, "sluice", password))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(secureBroker.Close)
	kafkaEnv := kafkaauth.Config{
		TLS:  kafkaauth.TLS{Enabled: true, CAFile: files.CA},
		SASL: kafkaauth.SASL{Mechanism: kafkaauth.ScramSHA512, Username: "sluice", Password: password},
	}.Environ()
	noop, err := filepath.Abs("../bench/sluice/noop.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p := gatewayPair{plainHTTP: freeAddr(b), plainGRPC: freeAddr(b), secureHTTP: freeAddr(b), secureGRPC: freeAddr(b),
		app: "noop", body: `{"x":1}`, sec: sec}
	plainBs, secureBs := strings.Join(plainBroker.Brokers(), ","), strings.Join(secureBroker.Brokers(), ",")
	dev := []string{"dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--builtin=false", "-f", noop, "--blob-dir", b.TempDir()}
	startSluice(b, bin, nil, append(dev, "--brokers", plainBs)...)
	startSluice(b, bin, kafkaEnv, append(dev, "--brokers", secureBs)...)
	plainPid, _ := startSluice(b, bin, nil, "gateway", "--http", p.plainHTTP, "--grpc", p.plainGRPC, "--brokers", plainBs)
	securePid, _ := startSluice(b, bin, kafkaEnv, append([]string{"gateway", "--http", p.secureHTTP, "--grpc", p.secureGRPC, "--brokers", secureBs}, sec.args...)...)
	p.cpu = [2]func() time.Duration{func() time.Duration { return procCPU(b, plainPid) }, func() time.Duration { return procCPU(b, securePid) }}
	waitReady(b, readyAt(&http.Client{}, "http://"+p.plainHTTP+"/v2/health/ready"))
	waitReady(b, readyAt(&http.Client{Transport: &http.Transport{TLSClientConfig: sec.tlsc}}, "https://"+p.secureHTTP+"/v2/health/ready"))
	compareGateways(b, p)
}

// procCPU is a process's CPU time, user and system, from /proc (clock
// ticks of 10 ms).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (which may hold spaces) in ")".
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
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

// measure makes n calls from conc goroutines after a warm-up that has
// every goroutine call twice, so that the connections the calls need are
// open (REST over HTTP/1.1 opens one per concurrent call, each with its
// TLS handshake on the secured gateway: a cost of connecting, not of a
// call): each call's latency, and the time all took.
func measure(n, conc int, fn func(context.Context) error) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var failed atomic.Value
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for range 2 {
				if err := fn(ctx); err != nil {
					failed.Store(err)
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return nil, 0, err
	}
	lat := make([]time.Duration, n)
	var next atomic.Int64
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
