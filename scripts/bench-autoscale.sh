#!/usr/bin/env bash
# Replays the load traces of autoscaler/sim (step, burst, diurnal,
# spike-to-zero) through Sluice's autoscaling policy and models of the KEDA
# Kafka scaler and of Ray Serve at their defaults: writes
# docs/img/autoscale-<trace>.png and prints a Markdown table, then whether
# our policy meets its target on each trace. Deterministic: the same code
# prints the same numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/img
go run ./autoscaler/sim/cmd/autoscale-sim -out docs/img "$@"
