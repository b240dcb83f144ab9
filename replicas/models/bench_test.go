package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// BenchmarkColdStart100MB measures the first request for a 100 MB model on
// a replica that has never seen it: fetch (download and SHA-256 check into
// the cache directory), load (the runtime reads 100 MB of weights) and
// infer, next to a plain download of the same bytes from the same store
// measured in the same iteration. The store is a real MinIO when
// SLUICE_TEST_S3_* name one, else a local directory.
//
//	eval "$(scripts/minio.sh start)"; SLUICE_TEST_S3_ENDPOINT=$S3_ENDPOINT \
//	SLUICE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY SLUICE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY \
//	go test ./replicas/models -run '^$' -bench ColdStart -benchtime 3x
func BenchmarkColdStart100MB(b *testing.B) {
	const in, out = 5120, 5120 // 5120 × 5120 float32 = 100 MiB
	ctx := context.Background()
	store, where := benchStore(b)
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	reg, err := registry.New(ctx, registry.Config{Brokers: e.Brokers(), Store: store, Log: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go reg.Run(rctx)

	weights := make([]byte, in*out*4)
	for i := range in * out {
		binary.LittleEndian.PutUint32(weights[4*i:], math.Float32bits(float32(i%7)/7))
	}
	bias := make([]float32, out)
	manifest := []byte(fmt.Sprintf(`{"input":"x","output":"y","in":%d,"weights_file":"weights.bin","bias":%s}`, in, floatsJSON(bias)))
	u := registry.Upload{Model: "cold", Format: LinearFormat, Files: []registry.File{
		{Path: "model.json", Size: int64(len(manifest)), SHA256: sha(manifest)},
		{Path: "weights.bin", Size: int64(len(weights)), SHA256: sha(weights)},
	}}
	v, err := reg.Publish(ctx, u, io.MultiReader(bytes.NewReader(manifest), bytes.NewReader(weights)))
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, in)
	for i := range x {
		x[i] = 1
	}
	req := &oip.InferRequest{Inputs: []oip.Tensor{oip.NewFP32("x", []int64{1, in}, x)}}

	var plain, fetch, load, infer, total time.Duration
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		// Baseline: the same bytes, straight from the store to a file.
		t0 := time.Now()
		rc, _, err := store.Get(ctx, registry.ObjectKey("cold", v.Version, "weights.bin"))
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, "plain.bin"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(f, rc); err != nil {
			b.Fatal(err)
		}
		f.Close()
		rc.Close()
		plain += time.Since(t0)

		c, err := NewCache(Config{Dir: filepath.Join(dir, "cache"), Log: quietLog}, reg, Runtimes{LinearFormat: Linear{}})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		m, _, release, err := c.AcquireVersion(ctx, v)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		resp, err := m.Infer(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		release()
		ys, _ := resp.Outputs[0].Float32s()
		if len(ys) != out {
			b.Fatalf("%d outputs", len(ys))
		}
		fe, lo, _ := c.Timings("cold", v.Version)
		fetch, load, infer, total = fetch+fe, load+lo, infer+t3.Sub(t2), total+t3.Sub(t1)
		c.Close()
	}
	b.StopTimer()
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / n / 1e6 }
	b.ReportMetric(ms(total), "first-answer-ms")
	b.ReportMetric(ms(fetch), "fetch-ms")
	b.ReportMetric(ms(load), "load-ms")
	b.ReportMetric(ms(infer), "infer-ms")
	b.ReportMetric(ms(plain), "plain-download-ms")
	b.ReportMetric(float64(fetch)/float64(plain), "fetch/plain")
	b.Logf("store %s, 100 MiB model, mean of %d: first answer %.0f ms = fetch %.0f (plain download of the same bytes %.0f, ratio %.2f) + load %.0f + infer %.0f",
		where, b.N, ms(total), ms(fetch), ms(plain), float64(fetch)/float64(plain), ms(load), ms(infer))
}

func benchStore(b *testing.B) (registry.Store, string) {
	if ep := os.Getenv("SLUICE_TEST_S3_ENDPOINT"); ep != "" {
		s, err := blob.NewS3(context.Background(), blob.S3Config{
			Endpoint: ep, AccessKey: os.Getenv("SLUICE_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("SLUICE_TEST_S3_SECRET_KEY"),
			CAFile: os.Getenv("SLUICE_TEST_S3_CA_FILE"), Bucket: "models-bench", Prefix: streams.Instance(),
		}, quietLog)
		if err != nil {
			b.Fatal(err)
		}
		return s, "MinIO " + ep
	}
	s, err := blob.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return s, "local directory"
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func floatsJSON(fs []float32) string {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, f := range fs {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, "%g", f)
	}
	buf.WriteByte(']')
	return buf.String()
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))
