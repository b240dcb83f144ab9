package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = byte(i*31 + int(p.left))
	}
	p.left -= int64(len(b))
	return len(b), nil
}

// heapPeak samples the heap in use until stop is closed.
func heapPeak(stop <-chan struct{}) *atomic.Uint64 {
	var peak atomic.Uint64
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return &peak
}

// BenchmarkPushPull512MiB pushes and pulls a 512 MiB artifact through the
// registry's gRPC API (client stream → registry → MinIO, and back), and in
// the same run puts and gets the same bytes with plain minio-go. It reports
// MB/s for each, the ratios, and the peak heap in use during the run.
//
//	eval "$(scripts/minio.sh start)"; SLUICE_TEST_S3_ENDPOINT=$S3_ENDPOINT \
//	SLUICE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY SLUICE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY \
//	go test ./registry -run '^$' -bench PushPull -benchtime 1x
func BenchmarkPushPull512MiB(b *testing.B) {
	const size = 512 << 20
	ep := os.Getenv("SLUICE_TEST_S3_ENDPOINT")
	if ep == "" {
		b.Skip("needs a real MinIO: set SLUICE_TEST_S3_ENDPOINT, SLUICE_TEST_S3_ACCESS_KEY, SLUICE_TEST_S3_SECRET_KEY")
	}
	ak, sk := os.Getenv("SLUICE_TEST_S3_ACCESS_KEY"), os.Getenv("SLUICE_TEST_S3_SECRET_KEY")
	ctx := context.Background()
	cfg := blob.S3Config{Endpoint: ep, AccessKey: ak, SecretKey: sk, CAFile: os.Getenv("SLUICE_TEST_S3_CA_FILE"), Bucket: "registry-bench", Prefix: streams.Instance()}
	store, err := blob.NewS3(ctx, cfg, quiet)
	if err != nil {
		b.Fatal(err)
	}
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	r, err := New(ctx, Config{Brokers: e.Brokers(), Store: store, Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.Run(rctx)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(append(BulkServerOptions(), grpc.MaxRecvMsgSize(MaxChunk))...)
	NewService(r, func(_ context.Context, err error) error { return status.Error(codes.Unknown, err.Error()) }).Register(srv)
	go srv.Serve(ln)
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), append(BulkDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := sluicev1.NewModelsClient(conn)
	raw, err := minio.New(ep, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, "")})
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, &patternReader{left: size})
	sum := hex.EncodeToString(h.Sum(nil))

	stop := make(chan struct{})
	peak := heapPeak(stop)
	var push, pull, put, get time.Duration
	buf := make([]byte, 1<<20)
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		stream, err := client.PushVersion(ctx)
		if err != nil {
			b.Fatal(err)
		}
		hdr := &sluicev1.PushHeader{Model: "bench", Files: []*sluicev1.ArtifactFile{{Path: "weights.bin", Size: size, Sha256: sum}}}
		if err := stream.Send(&sluicev1.PushVersionRequest{Part: &sluicev1.PushVersionRequest_Header{Header: hdr}}); err != nil {
			b.Fatal(err)
		}
		if err := SendChunks(&patternReader{left: size}, buf, func(c []byte) error {
			return stream.Send(&sluicev1.PushVersionRequest{Part: &sluicev1.PushVersionRequest_Chunk{Chunk: c}})
		}); err != nil {
			b.Fatal(err)
		}
		v, err := stream.CloseAndRecv()
		if err != nil {
			b.Fatal(err)
		}
		push += time.Since(start)

		start = time.Now()
		ps, err := client.PullVersion(ctx, &sluicev1.PullVersionRequest{Model: "bench", Version: v.GetVersion()})
		if err != nil {
			b.Fatal(err)
		}
		var got int64
		for {
			msg, err := ps.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got += int64(len(msg.GetChunk()))
		}
		pull += time.Since(start)
		if got != size {
			b.Fatalf("pulled %d bytes, want %d", got, size)
		}

		start = time.Now()
		if _, err := raw.PutObject(ctx, cfg.Bucket, cfg.Prefix+"/raw", &patternReader{left: size}, size, minio.PutObjectOptions{PartSize: 16 << 20}); err != nil {
			b.Fatal(err)
		}
		put += time.Since(start)
		start = time.Now()
		obj, err := raw.GetObject(ctx, cfg.Bucket, cfg.Prefix+"/raw", minio.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, obj, buf)
		obj.Close()
		get += time.Since(start)
		if err != nil || n != size {
			b.Fatalf("minio-go get %d bytes: %v", n, err)
		}
	}
	close(stop)
	iters := float64(b.N)
	mbps := func(d time.Duration) float64 { return size * iters / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(push), "push-MB/s")
	b.ReportMetric(mbps(put), "minio-put-MB/s")
	b.ReportMetric(mbps(push)/mbps(put), "push/put")
	b.ReportMetric(mbps(pull), "pull-MB/s")
	b.ReportMetric(mbps(get), "minio-get-MB/s")
	b.ReportMetric(mbps(pull)/mbps(get), "pull/get")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}
