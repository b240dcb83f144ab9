package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTestDev starts the platform in process on free ports: the embedded
// broker, model weights in a temporary directory.
func startTestDev(tb testing.TB) *Dev {
	tb.Helper()
	d, err := StartDev(context.Background(), DevConfig{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", BlobDir: tb.TempDir(), Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.Close)
	return d
}

// syncBuffer is a bytes.Buffer that a command writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every client command, models included, finds `sluice dev` and `sluice
// gateway` at the one address --addr names.
func TestClientCommandsOneAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform and a gateway")
	}
	t.Parallel()
	d := startTestDev(t)
	weights := writeTemp(t, "w.bin", strings.Repeat("sluice ", 1000))
	into := t.TempDir()
	for _, args := range [][]string{
		{"models", "push", "m", weights, "--alias", "prod"},
		{"models", "ls"},
		{"models", "alias", "m", "live", "1"},
		{"models", "pull", "m@live", into},
		{"status"},
	} {
		if _, stderr, err := runCLI(t, map[string]string{"SLUICE_ADDR": d.Addr}, args...); err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	if got, err := os.ReadFile(filepath.Join(into, "w.bin")); err != nil || string(got) != strings.Repeat("sluice ", 1000) {
		t.Fatalf("pulled: %d bytes, %v", len(got), err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"gateway", "--brokers", strings.Join(d.Brokers, ","), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"},
			Env{Stdout: &out, Stderr: io.Discard, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	}()
	ready := regexp.MustCompile(`REST on http://(\S+),`)
	var gw string
	for deadline := time.Now().Add(30 * time.Second); gw == ""; time.Sleep(20 * time.Millisecond) {
		if m := ready.FindStringSubmatch(out.String()); m != nil {
			gw = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %q", out.String())
		}
	}
	if _, stderr, err := runCLI(t, nil, "status", "--addr", gw); err != nil {
		t.Fatalf("status through the gateway: %v\n%s", err, stderr)
	}
	// Every gateway serves the registry API on the same address: it lists
	// without a model store (writes need --s3-endpoint).
	if _, stderr, err := runCLI(t, nil, "models", "ls", "--addr", gw); err != nil {
		t.Fatalf("models ls through the gateway: %v\n%s", err, stderr)
	}
}

// BenchmarkModelsPushPorts pushes, then pulls, a 256 MiB artifact with
// `sluice models` through the platform's gRPC port and through its HTTP
// port (net/http's HTTP/2 server handing the stream to the gRPC server),
// alternating which goes first, and reports each one's throughput and
// the HTTP port's over the gRPC port's. What is timed is the whole
// command: the CLI hashing the file, the stream, the registry hashing and
// writing it to a directory (and the reverse for a pull).
//
//	go test ./platform/cli -run '^$' -bench ModelsPushPorts -benchtime 5x
func BenchmarkModelsPushPorts(b *testing.B) {
	const size = 256 << 20
	d := startTestDev(b)
	src := filepath.Join(b.TempDir(), "weights.bin")
	f, err := os.Create(src)
	if err == nil {
		_, err = io.CopyN(f, rand.Reader, size)
		f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }}
	ports := [2]struct{ name, addr string }{{"grpc-port", d.GRPCAddr}, {"http-port", d.Addr}}
	var push, pull [2]time.Duration
	version, rounds := 0, 0
	for b.Loop() {
		for j := range 2 {
			k := (j + rounds) % 2
			version++
			v, addr := fmt.Sprint(version), ports[k].addr
			start := time.Now()
			if err := Run(b.Context(), []string{"models", "push", "m", src, "--version", v, "--addr", addr}, env); err != nil {
				b.Fatal(err)
			}
			push[k] += time.Since(start)
			into := b.TempDir()
			start = time.Now()
			if err := Run(b.Context(), []string{"models", "pull", "m:" + v, into, "--addr", addr}, env); err != nil {
				b.Fatal(err)
			}
			pull[k] += time.Since(start)
			os.RemoveAll(into)
			if err := Run(b.Context(), []string{"models", "rm", "m", v, "--addr", addr}, env); err != nil {
				b.Fatal(err)
			}
		}
		rounds++
	}
	n := float64(rounds)
	for k, p := range ports {
		b.ReportMetric(n*size/(1<<20)/push[k].Seconds(), p.name+"-push-MiB/s")
		b.ReportMetric(n*size/(1<<20)/pull[k].Seconds(), p.name+"-pull-MiB/s")
	}
	b.ReportMetric(push[0].Seconds()/push[1].Seconds(), "push-http/grpc")
	b.ReportMetric(pull[0].Seconds()/pull[1].Seconds(), "pull-http/grpc")
}
