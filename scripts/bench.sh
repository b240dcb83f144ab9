#!/usr/bin/env bash
# scripts/bench.sh — Sluice against Ray Serve on this machine (make bench).
#
# Creates (once; again when bench/ray/requirements.txt changes) a virtualenv
# with the pinned Ray Serve and matplotlib, builds bin/sluice and
# bin/sluice-load, and runs bench/run.py with the virtualenv's Python. It
# starts each system in turn (Sluice with its embedded broker, Sluice on a
# real Apache Kafka from scripts/kafka.sh, Ray Serve), drives workloads 1-5
# with sluice-load and writes bench/results/<date>.md and .png, copied to
# bench/results/latest.md and latest.png. Workload 5, multiplexed models,
# pushes 50 generated sluice-linear models to each Sluice (bench/sluice/
# multiplex.yaml serves them) and hands the same files to Ray's multiplexed
# deployment; requests follow a Zipf(1.1) mix over the 50.
#
# Environment:
#   BENCH_DURATION     measured time per row (default 10s)
#   BENCH_WARMUP       warm-up per row, not measured (default 2s)
#   BENCH_CONCURRENCY  closed-loop workers, one row each (default "1 16 64")
#   BENCH_SYSTEMS      default "sluice-embedded sluice-kafka ray"
#   BENCH_WORKLOADS    default "noop chain chain10 hello multiplex"
#   BENCH_MAX_LOAD     wait while the 1-minute load average is above this
#                      (default 1.5) ...
#   BENCH_LOAD_WAIT    ... for at most this many seconds (default 300)
#   BENCH_OUT          results directory (default bench/results)
#   BENCH_NAME         file name of the results, without .md/.png (default
#                      the date); when set, latest.* are left as they are
#   SLUICE_CACHE       cache root (default $HOME/.cache/sluice): ray-venv,
#                      and Kafka's jars via scripts/kafka.sh
#   PYTHON             interpreter for the virtualenv (default python3.11)
#   GO                 go command
# `scripts/bench.sh pyports` runs bench/ray/pyports.py instead: the
# Python ports of hello and chain (examples/python) on Sluice and the
# same code with Ray's imports on Ray Serve, c = 1, 16, 64, printing
# throughput and p50 ratios (BENCH_DURATION, BENCH_WARMUP in seconds,
# BENCH_CONCURRENCY).
# `ray stop --force` at the end stops every Ray process of this user, as
# Ray offers no narrower stop; the benchmark's own processes (its setsid
# sessions) are then killed by process id.
# Nothing is written into the repository but bin/ (git-ignored) and
# bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${SLUICE_CACHE:-$HOME/.cache/sluice}
VENV=$CACHE/ray-venv
REQS=bench/ray/requirements.txt
GO=${GO:-go}
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Everything is on loopback; never send it through a proxy.
export NO_PROXY=${NO_PROXY:+$NO_PROXY,}127.0.0.1,localhost
export no_proxy=$NO_PROXY

die() { echo "bench: $*" >&2; exit 1; }

venv() {
	local py stamp
	py=${PYTHON:-python3.11}
	command -v "$py" >/dev/null 2>&1 || die "$py not found (Ray 2.49 wheels: Python 3.9-3.12); set PYTHON"
	stamp="$("$py" --version 2>&1) $(sha256sum "$REQS" | cut -c1-16)"
	if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.stamp" 2>/dev/null)" = "$stamp" ]; then
		return
	fi
	echo "== virtualenv $VENV ($REQS)"
	rm -rf "$VENV" # the stamp is written last: a failed install is redone
	"$py" -m venv "$VENV"
	"$VENV/bin/pip" install -q -r "$REQS"
	"$VENV/bin/pip" check
	echo "$stamp" >"$VENV/.stamp"
}

venv
echo "== build bin/sluice, bin/sluice-load"
$GO build -o bin/sluice ./cmd/sluice
$GO build -o bin/sluice-load ./bench/cmd/sluice-load
if [ "${1:-}" = pyports ]; then
	echo "== bench/ray/pyports.py"
	exec "$VENV/bin/python" bench/ray/pyports.py
fi
echo "== bench/run.py"
BENCH_COMMAND=${BENCH_COMMAND:-make bench} exec "$VENV/bin/python" bench/run.py
