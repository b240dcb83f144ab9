package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/sluice-serve/sluice/streams"
)

// BenchmarkClaims measures a 16 MiB FP32 tensor through the 2-deployment
// graph quad (Quad calls Doubler through a handle) over OIP REST binary
// and gRPC, next to a raw put+get of the same bytes to the same blob
// store in the same run. A call stores and fetches four claims (the
// request, the handle call, two replies): its floor is about four raw
// put+gets, plus the tensor decoded and encoded at each hop.
//
//	go test ./e2e -run '^$' -bench Claims -benchtime 10x
//	SLUICE_TEST_BROKERS=... SLUICE_TEST_S3_ENDPOINT=... go test ./e2e -run '^$' -bench Claims -benchtime 10x
func BenchmarkClaims(b *testing.B) {
	raw := fp32Tensor(4 << 20)
	ctx := context.Background()
	b.Run("store put+get 16MiB", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		store := plat.Store()
		key := "bench/" + streams.Instance()
		for b.Loop() {
			if _, err := store.Put(ctx, key, bytes.NewReader(raw), int64(len(raw))); err != nil {
				b.Fatal(err)
			}
			rc, _, err := store.Get(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || len(got) != len(raw) {
				b.Fatalf("get: %d bytes, %v", len(got), err)
			}
		}
		_ = store.Delete(ctx, key)
	})
	b.Run("REST binary 16MiB quad", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		client := &http.Client{}
		for b.Loop() {
			out, err := inferBinary(ctx, client, "quad", raw)
			if err != nil || len(out) != len(raw) {
				b.Fatalf("infer: %d bytes, %v", len(out), err)
			}
		}
	})
	b.Run("gRPC 16MiB quad", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		c := largeGRPC(b)
		for b.Loop() {
			out, err := inferGRPC(ctx, c, "quad", raw)
			if err != nil || len(out) != len(raw) {
				b.Fatalf("infer: %d bytes, %v", len(out), err)
			}
		}
	})
}
