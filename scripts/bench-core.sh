#!/usr/bin/env bash
# Core data-path benchmark on the embedded broker and on a real Kafka broker.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-3000x}
echo "== embedded broker"
go test ./e2e -run '^$' -bench Sync -benchtime "$BENCHTIME" 2>&1 | grep -E '^(Benchmark|cpu|ok)'
echo "== idle replica process (sluice replica, embedded broker)"
go test ./e2e -count=1 -run '^TestReplicaProcess$' -v 2>&1 | grep -o 'idle replica process RSS: .*'
echo "== real Apache Kafka"
export KAFKA_STATE_DIR=${KAFKA_STATE_DIR:-$(mktemp -d /tmp/sluice-kafka-bench.XXXXXX)}
trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
line=$(scripts/kafka.sh start)
SLUICE_TEST_BROKERS=${line#KAFKA_BROKERS=} go test ./e2e -run '^$' -bench Sync -benchtime "$BENCHTIME" 2>&1 | grep -E '^(Benchmark|cpu|ok)'
