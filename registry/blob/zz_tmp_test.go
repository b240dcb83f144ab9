package blob

import (
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestZZTiming(t *testing.T) {
	cfg := s3TestConfig(t)
	s := newTestS3(t, cfg)
	ctx := t.Context()
	for _, n := range []int64{mib, 64 * mib, 512 * mib} {
		for _, etag := range []bool{false, true} {
			up, err := s.client.PutObject(ctx, s.bucket, "x/y", genData(1, n), n, minio.PutObjectOptions{PartSize: defaultPartSize})
			if err != nil {
				t.Fatal(err)
			}
			src := minio.CopySrcOptions{Bucket: s.bucket, Object: "x/y"}
			if etag {
				src.MatchETag = up.ETag
			}
			start := time.Now()
			_, err = s.client.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: "x/y", ReplaceMetadata: true, UserMetadata: map[string]string{"sha256": "abc"}}, src)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("size %d MiB etag %v: stamp copy %s", n/mib, etag, time.Since(start))
		}
	}
}
