#!/usr/bin/env bash
# `make run`: the platform in one process (embedded broker) with the
# built-in examples, and examples/greeter — a module of its own, built as
# its own binary — published to the registry as a code bundle and deployed
# the way a user would: `sluice code push`, then `sluice deploy`.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8000}
GRPC_ADDR=${GRPC_ADDR:-127.0.0.1:9000}

$GO build -o bin/sluice ./cmd/sluice
(cd examples/greeter && $GO build -o ../../bin/greeter .)

bin/sluice dev --http "$HTTP_ADDR" --grpc "$GRPC_ADDR" -f examples/hello-cel/hello-cel.yaml "$@" &
dev=$!
trap 'kill -TERM "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 600); do
	if bin/sluice status --addr "$HTTP_ADDR" >/dev/null 2>&1; then
		break
	fi
	kill -0 "$dev" 2>/dev/null || { echo "run: sluice dev exited" >&2; exit 1; }
	sleep 0.1
done
bin/sluice code push greeter bin/greeter --alias production --addr "$HTTP_ADDR"
bin/sluice deploy -f examples/greeter/app.yaml --addr "$HTTP_ADDR"
echo "run: ready on http://$HTTP_ADDR (Ctrl-C stops); try: curl -d Dora $HTTP_ADDR/greeter"
wait "$dev"
