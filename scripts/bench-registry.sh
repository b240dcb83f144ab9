#!/usr/bin/env bash
# Registry benchmark (issue #4 figures): a 512 MiB artifact pushed and pulled
# through the registry's gRPC API, and put and got through the blob store,
# each next to plain minio-go on the same bytes in the same run, against a
# real MinIO on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-2x}
export MINIO_STATE_DIR=${MINIO_STATE_DIR:-$(mktemp -d /tmp/sluice-minio-bench.XXXXXX)}
trap 'scripts/minio.sh stop >/dev/null 2>&1 || true' EXIT
eval "$(scripts/minio.sh start)"
export SLUICE_TEST_S3_ENDPOINT=$S3_ENDPOINT SLUICE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY SLUICE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
echo "== registry push/pull (gRPC) vs minio-go"
go test ./registry -run '^$' -bench PushPull512MiB -benchtime "$BENCHTIME" 2>&1 | grep -E '^(Benchmark|ok|FAIL)'
echo "== blob store put/get vs minio-go"
go test ./registry/blob -run '^$' -bench S3PutGet512MiB -benchtime "$BENCHTIME" 2>&1 | grep -E '^(Benchmark|ok|FAIL)'
