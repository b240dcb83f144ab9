#!/usr/bin/env bash
# `make run`: the platform in one process (embedded broker) with the
# built-in examples, and examples/greeter and examples/predict — modules of
# their own, built as their own binaries — published to the registry as
# code bundles and deployed the way a user would: `sluice code push`, then
# `sluice deploy` (predict with a registry model, `line`, to serve); and
# the Python ports of the composition examples (examples/python) pushed
# and deployed as python-project bundles with `sluice deploy --python`,
# at /py/hello, /py/chain and /py/stream.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8000}
GRPC_ADDR=${GRPC_ADDR:-127.0.0.1:9000}

$GO build -o bin/sluice ./cmd/sluice
(cd examples/greeter && $GO build -o ../../bin/greeter .)
(cd examples/predict && $GO build -o ../../bin/predict .)

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
bin/sluice code push predict bin/predict --alias production --addr "$HTTP_ADDR"
if ! bin/sluice models ls --addr "$HTTP_ADDR" 2>/dev/null | grep -q '^line '; then
	bin/sluice models push line examples/models/affine-v1 --label demo=predict --addr "$HTTP_ADDR"
fi
predict_yaml=$(mktemp)
sed "s#http://127.0.0.1:8000#http://$HTTP_ADDR#" examples/predict/app.yaml >"$predict_yaml"
bin/sluice deploy -f "$predict_yaml" --addr "$HTTP_ADDR"
rm -f "$predict_yaml"
# The Python environment (the SDK's and the examples' requirements) is
# built by pip the first time and cached under ~/.cache/sluice/code/python
# (SLUICE_PYTHON_ENVS); every later run, and all three, use it.
if "${SLUICE_PYTHON:-python3}" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
	for ex in hello chain stream; do
		bin/sluice deploy --python examples/python --import-path "$ex:app" --name "py-$ex" --route-prefix "/py/$ex" --addr "$HTTP_ADDR"
	done
	py_try="; curl -d '{\"language\":\"spanish\",\"name\":\"Dora\"}' $HTTP_ADDR/py/hello; curl -d 5 $HTTP_ADDR/py/chain; curl -N -d 5 $HTTP_ADDR/py/stream"
else
	echo "run: no Python 3.10 or later (set SLUICE_PYTHON): examples/python not deployed" >&2
	py_try=""
fi
echo "run: ready on http://$HTTP_ADDR (Ctrl-C stops); try: curl -d Dora $HTTP_ADDR/greeter; curl $HTTP_ADDR/predict/line$py_try"
wait "$dev"
