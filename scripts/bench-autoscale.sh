#!/usr/bin/env bash
# Replays the load traces of autoscaler/sim (step, burst, diurnal,
# spike-to-zero) through Sluice's autoscaling policy and models of the KEDA
# Kafka scaler and of Ray Serve at their defaults: writes
# docs/img/autoscale-<trace>.png and prints a Markdown table, then whether
# our policy meets its target on each trace. Deterministic: the same code
# prints the same numbers. Then the real run: a deployment at zero answering
# its first request, and a spike getting a second replica consuming.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/img
go run ./autoscaler/sim/cmd/autoscale-sim -out docs/img "$@"
echo
echo "== real run on the embedded broker: wake from zero, spike (go test ./e2e -bench Autoscale)"
go test ./e2e -run '^$' -bench Autoscale -benchtime "${BENCHTIME:-5x}" 2>&1 | grep -E '^(Benchmark|ok|FAIL)'
