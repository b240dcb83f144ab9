#!/usr/bin/env bash
# Runs the test tiers; with no argument, all of them in order.
#   unit   go vet, then unit tests with the race detector (no broker needed)
#   fuzz   each fuzz target for a few seconds (FUZZTIME, default 5s)
#   e2e    the end-to-end suite against the embedded broker
#   kafka  the same suite against a real Apache Kafka broker (scripts/kafka.sh)
#   gen    the committed generated protobuf code is what buf generates now
#   clients  tritonclient and the KServe SDK, unchanged, against `sluice dev`
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}

unit() {
	echo "== vet"
	$GO vet ./...
	echo "== unit tests (race detector)"
	$GO test -race -count=1 $($GO list ./... | grep -v /e2e)
}

fuzz() {
	echo "== fuzz ($FUZZTIME each)"
	local pkg target
	while read -r pkg target; do
		$GO test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 2s
	done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
		for t in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
			echo "./$(dirname "${f#./}") $t"
		done
	done)
}

e2e() {
	echo "== end-to-end, embedded broker"
	$GO test -count=1 ./e2e/
}

kafka() {
	echo "== end-to-end, real Apache Kafka"
	export KAFKA_STATE_DIR=${KAFKA_STATE_DIR:-$(mktemp -d /tmp/sluice-kafka-test.XXXXXX)}
	trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
	local line
	line=$(scripts/kafka.sh start)
	export SLUICE_TEST_BROKERS=${line#KAFKA_BROKERS=}
	echo "broker at $SLUICE_TEST_BROKERS"
	$GO test -count=1 ./e2e/
}

gen() {
	echo "== generated code is current"
	scripts/gen.sh check
}

clients() {
	echo "== real inference clients (tritonclient, KServe SDK) against sluice dev"
	scripts/pyclients.sh run
}

if [ $# -eq 0 ]; then
	set -- gen unit fuzz e2e kafka clients
fi
for tier in "$@"; do
	case "$tier" in
	unit | fuzz | e2e | kafka | gen | clients) "$tier" ;;
	*) echo "unknown tier $tier (gen, unit, fuzz, e2e, kafka, clients)" >&2; exit 2 ;;
	esac
done
