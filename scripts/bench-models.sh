#!/usr/bin/env bash
# Model serving benchmarks (issue #5 figures):
#   multiplexing  50 registry models, Zipf(1.1) mix, 4 replicas × 5 models:
#                 model-aware vs random routing over the same request
#                 sequence through the gateway, next to an ideal LRU of 20
#                 (embedded broker; weights in a local directory)
#   cold start    the first request for a 100 MiB model: fetch, load and
#                 infer, next to a plain download of the same bytes from the
#                 same real MinIO on loopback
set -euo pipefail
cd "$(dirname "$0")/.."
export MINIO_STATE_DIR=${MINIO_STATE_DIR:-$(mktemp -d /tmp/sluice-minio-bench.XXXXXX)}
trap 'scripts/minio.sh stop >/dev/null 2>&1 || true' EXIT
echo "== multiplexing (go test ./e2e -bench Multiplex)"
go test ./e2e -run '^$' -bench Multiplex -benchtime 1x 2>&1 | grep -E '^(Benchmark|ok|FAIL|\s+models_bench)'
eval "$(scripts/minio.sh start)"
export SLUICE_TEST_S3_ENDPOINT=$S3_ENDPOINT SLUICE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY SLUICE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
echo "== cold start of a 100 MiB model from MinIO (go test ./replicas/models -bench ColdStart)"
go test ./replicas/models -run '^$' -bench ColdStart100MB -benchtime "${BENCHTIME:-3x}" 2>&1 | grep -E '^(Benchmark|ok|FAIL|\s+bench_test)'
