#!/usr/bin/env bash
# Runs the test tiers; with no argument, all of them in order.
#   unit   go vet, then unit tests with the race detector (no broker needed)
#   fuzz   each fuzz target for a few seconds (FUZZTIME, default 5s)
#   e2e    the end-to-end suite against the embedded broker
#   real   the same suite, the registry, the blob stores and the
#          autoscaler's lag reader and loop against a real
#          Apache Kafka broker (scripts/kafka.sh) and a real MinIO (scripts/minio.sh)
#   secure Kafka TLS and SASL: the core e2e tests on a TLS+SCRAM embedded
#          broker, then on Apache Kafka with a SASL_SSL listener and an
#          authorizer (KAFKA_SECURITY=sasl_ssl) and MinIO over HTTPS
#          (MINIO_TLS=1), role ACLs enforced, the Python replica's tests
#   gen    the committed generated protobuf code is what buf generates now
#   helm   the Helm chart (deploy/helm/sluice): helm lint, then helm template
#          with the default values and each ci/ values file, every rendered
#          object decoded strictly into its k8s.io/api type and checked
#          (deploy/helm/chart_test.go); helm is installed at HELM_VERSION
#   clients  tritonclient and the KServe SDK, unchanged, against `sluice dev`;
#          and scikit-learn models multiplexed by a Python deployment
#          (scripts/pyclients.sh sklearn; the real tier runs it on Kafka and MinIO)
#   tf     TensorFlow SavedModels pushed with `sluice models push` and served
#          by a model deployment of a `-tags tensorflow` build, on a real Kafka
#          and a real MinIO, driven by tritonclient (scripts/pyclients.sh tf)
#   smoke  bin/sluice-load against `sluice dev -f bench/sluice/noop.yaml` for
#          SMOKETIME (default 10s): the benchmark's path runs with no error
#   ui     the dashboard (/ui) in a headless Chromium, over the Chrome
#          DevTools Protocol, against what `make run` deploys (e2e/ui); the
#          browser comes from scripts/chromium.sh (Debian's chromium package,
#          installed, or unpacked under ~/.cache/sluice without root);
#          SLUICE_ARTIFACTS is where its screenshot goes (default bin/artifacts)
#   python the Python package (python/): ruff, mypy --strict, then pytest
#          (the protocol, the replica runtime and the conformance suite)
#          against `sluice dev` built from this checkout, or against
#          SLUICE_TEST_BROKERS when set (the real tier runs the same pytest
#          on its Kafka); its virtualenv is cached in ~/.cache/sluice,
#          keyed by python/pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
SMOKETIME=${SMOKETIME:-10s}
HELM_VERSION=v3.21.4
HELM_KUBE_VERSION=1.33.0 # the Kubernetes version helm lint and template assume

unit() {
	echo "== vet"
	$GO vet ./...
	$GO vet -tags kubernetes ./platform/cli/ # the Kubernetes actuator's CLI wiring
	echo "== go.mod tidy, the root module and the examples built as modules of their own"
	local m
	for m in . $(git ls-files '*/go.mod' | xargs -r -n1 dirname); do
		(cd "$m" && $GO mod tidy -diff) || { echo "go.mod or go.sum of $m is not tidy: run go mod tidy there" >&2; return 1; }
	done
	echo "== unit tests (race detector)"
	$GO test -race -count=1 $($GO list ./... | grep -v -e /e2e -e /deploy/helm) # the chart has its tier (helm)
}

# fuzz_one fuzzes one target. Go's fuzzing coordinator (before go1.27,
# golang/go#75804) can fail a target with a bare "context deadline
# exceeded" when -fuzztime ends on a loaded machine, having found nothing:
# such a run, with no failing input written, is tried again (twice at
# most); any other failure fails the tier.
fuzz_one() {
	local out try
	for try in 1 2 3; do
		if out=$($GO test "$1" -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 2s 2>&1); then
			printf '%s\n' "$out"
			return 0
		fi
		printf '%s\n' "$out"
		if [[ $out != *"context deadline exceeded"* || $out == *"Failing input written to"* ]]; then
			return 1
		fi
		echo "fuzz: $2 stopped on the coordinator's deadline race with no failing input; again ($try of 3)"
	done
	return 1
}

fuzz() {
	echo "== fuzz ($FUZZTIME each)"
	local pkg target
	while read -r pkg target; do
		fuzz_one "$pkg" "$target"
	done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
		for t in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
			echo "./$(dirname "${f#./}") $t"
		done
	done)
}

e2e() {
	echo "== end-to-end, embedded broker"
	$GO test -count=1 -timeout 30m ./e2e/
}

# services starts a real Kafka and a real MinIO, stopped when the script
# exits, and exports SLUICE_TEST_BROKERS and SLUICE_TEST_S3_*.
services() {
	[ -n "${SLUICE_TEST_BROKERS:-}" ] && return
	export KAFKA_STATE_DIR=${KAFKA_STATE_DIR:-$(mktemp -d /tmp/sluice-kafka-test.XXXXXX)}
	export MINIO_STATE_DIR=${MINIO_STATE_DIR:-$(mktemp -d /tmp/sluice-minio-test.XXXXXX)}
	trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true; scripts/minio.sh stop >/dev/null 2>&1 || true' EXIT
	local line s3
	line=$(scripts/kafka.sh start)
	export SLUICE_TEST_BROKERS=${line#KAFKA_BROKERS=}
	s3=$(scripts/minio.sh start)
	eval "$s3"
	export SLUICE_TEST_S3_ENDPOINT=$S3_ENDPOINT SLUICE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY SLUICE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
	echo "kafka at $SLUICE_TEST_BROKERS, minio at $SLUICE_TEST_S3_ENDPOINT"
}

real() {
	echo "== end-to-end, real Apache Kafka and real MinIO"
	services
	$GO test -count=1 -timeout 40m ./e2e/ ./registry/... ./autoscaler/
	echo "== broker restart under load (scripts/kafka.sh restart), alone"
	SLUICE_TEST_BROKER_RESTART=1 $GO test -count=1 -run '^TestNodeBrokerRestart$' -v ./e2e/ | grep -E '^(=== RUN|--- |\s+broker_test|PASS|FAIL|ok)'
	echo "== the Python package's tests (conformance on the Python replica), real Apache Kafka"
	python_tests
	echo "== scikit-learn models multiplexed by a Python deployment, weights from the real MinIO"
	SLUICE_S3_ACCESS_KEY=$SLUICE_TEST_S3_ACCESS_KEY SLUICE_S3_SECRET_KEY=$SLUICE_TEST_S3_SECRET_KEY \
		scripts/pyclients.sh sklearn --real "$SLUICE_TEST_BROKERS" "$SLUICE_TEST_S3_ENDPOINT"
}

# secure runs what proves Kafka's TLS, SASL and ACLs end to end
# (TESTING.md, "Kafka security").
secure() (
	echo "== Kafka security: core e2e tests on a TLS + SCRAM-SHA-512 embedded broker"
	# the embedded broker: not the real tier's Kafka and MinIO, whose
	# addresses that tier exported into this shell
	env -u SLUICE_TEST_BROKERS -u SLUICE_TEST_S3_ENDPOINT -u SLUICE_TEST_S3_ACCESS_KEY -u SLUICE_TEST_S3_SECRET_KEY \
		SLUICE_TEST_KAFKA_SECURE=1 $GO test -count=1 ./e2e/ -run '^(TestKafkaSecured|TestExamples|TestOfflineBatch|TestNodeRunsReplicaProcesses|TestNodeFailoverSync|TestNodeKafkaPrincipals|TestPythonBundleDev)$'
	echo "== Kafka security: Apache Kafka over SASL_SSL with an authorizer, MinIO over HTTPS"
	export KAFKA_STATE_DIR=$(mktemp -d /tmp/sluice-kafka-secure.XXXXXX) MINIO_STATE_DIR=$(mktemp -d /tmp/sluice-minio-secure.XXXXXX)
	trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true; scripts/minio.sh stop >/dev/null 2>&1 || true' EXIT
	local kafka s3
	kafka=$(KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start)
	eval "$(sed 's/^/export /' <<<"$kafka")"
	s3=$(MINIO_TLS=1 scripts/minio.sh start)
	eval "$s3"
	export SLUICE_TEST_BROKERS=$KAFKA_BROKERS SLUICE_TEST_S3_ENDPOINT=$S3_ENDPOINT SLUICE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY \
		SLUICE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY SLUICE_TEST_S3_CA_FILE=$S3_CA_FILE
	$GO test -count=1 ./e2e/ -run '^(TestKafkaSecured|TestKafkaSecurityRefusedByBroker|TestKafkaOAuthBearerOnBroker|TestKafkaACLsOnBroker|TestNodeKafkaPrincipals|TestExamples|TestOfflineBatch|TestNodeRunsReplicaProcesses|TestModelsCLI|TestPythonBundleDev)$'
	$GO test -count=1 ./registry/blob/ -run '^TestS3TLS$'
	python_tests
)

tf() {
	echo "== TensorFlow runtime (-tags tensorflow, libraries from the tensorflow-cpu wheel)"
	(eval "$(scripts/tf.sh env)" && $GO test -count=1 -tags tensorflow ./replicas/runtime/tensorflow/)
	echo "== TensorFlow models from the registry, tritonclient, real Apache Kafka and real MinIO"
	services
	SLUICE_S3_ACCESS_KEY=$SLUICE_TEST_S3_ACCESS_KEY SLUICE_S3_SECRET_KEY=$SLUICE_TEST_S3_SECRET_KEY \
		scripts/pyclients.sh tf "$SLUICE_TEST_BROKERS" "$SLUICE_TEST_S3_ENDPOINT"
}

gen() {
	echo "== generated code is current"
	scripts/gen.sh check
}

# helm_tier checks the chart offline: no cluster, no schema download (the
# schema is the k8s.io/api types the Go test decodes into). helm is built
# with go install into $SLUICE_CACHE/bin (default ~/.cache/sluice/bin) with
# a version stamp, as scripts/gen.sh does its tools.
helm_tier() {
	echo "== Helm chart: lint, template, rendered objects validated"
	local bin="${SLUICE_CACHE:-$HOME/.cache/sluice}/bin" values
	local helm="$bin/helm" stamp="$bin/.helm.version"
	if [[ ! -x $helm || ! -f $stamp || $(cat "$stamp") != "$HELM_VERSION" ]]; then
		echo "installing helm $HELM_VERSION into $bin"
		mkdir -p "$bin"
		rm -f "$stamp"
		GOFLAGS= GOBIN="$bin" $GO install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
		echo "$HELM_VERSION" >"$stamp"
	fi
	"$helm" lint --strict --quiet --kube-version "$HELM_KUBE_VERSION" deploy/helm/sluice
	for values in deploy/helm/sluice/ci/*.yaml; do
		"$helm" lint --strict --quiet --kube-version "$HELM_KUBE_VERSION" deploy/helm/sluice -f "$values"
	done
	SLUICE_HELM=$helm $GO test -count=1 ./deploy/helm/
}

clients() {
	echo "== real inference clients (tritonclient, KServe SDK) against sluice dev"
	scripts/pyclients.sh run
	scripts/pyclients.sh auth
	echo "== scikit-learn models from the registry in a multiplexing Python deployment, tritonclient"
	scripts/pyclients.sh sklearn
}

# smoke starts `sluice dev` with the benchmark's no-op on ports the kernel
# picks (read back from its "REST on" line, printed once ready), and drives
# it with the benchmark's load generator: no request may fail. It runs in
# a subshell so that its trap leaves the services' trap alone.
smoke() (
	echo "== smoke: sluice-load against sluice dev /noop ($SMOKETIME)"
	$GO build -o bin/sluice ./cmd/sluice
	$GO build -o bin/sluice-load ./bench/cmd/sluice-load
	log=$(mktemp "${TMPDIR:-/tmp}/sluice-smoke.XXXXXX.log")
	bin/sluice dev --http 127.0.0.1:0 --grpc 127.0.0.1:0 --builtin=false -f bench/sluice/noop.yaml >"$log" 2>&1 &
	pid=$!
	trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
	addr="" rc=0 deadline=$((SECONDS + 60))
	while [ -z "$addr" ] && [ "$SECONDS" -lt "$deadline" ] && kill -0 "$pid" 2>/dev/null; do
		addr=$(sed -n 's|^sluice dev: REST on http://\([^,]*\),.*|\1|p' "$log")
		[ -n "$addr" ] || sleep 0.2
	done
	if [ -z "$addr" ]; then
		echo "smoke: sluice dev not ready; its log:" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
	line=$(bin/sluice-load -url "http://$addr/noop" -body '{"x":1}' -expect '{"x":1}' -c 8 \
		-duration "$SMOKETIME" -warmup 1s) || rc=$?
	echo "$line"
	if [ "$rc" -ne 0 ] || ! [[ "$line" =~ ^requests\ [1-9] ]]; then
		echo "smoke: FAILED (status $rc); last lines of the server's log:" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
)

# ui drives the dashboard in a real browser (e2e/ui/dashboard_test.go).
ui() {
	echo "== ui: the dashboard in headless Chromium"
	SLUICE_CHROMIUM=$(scripts/chromium.sh)
	export SLUICE_CHROMIUM
	$GO test -count=1 -v -timeout 10m ./e2e/ui/
}

# python_venv prints the path of the virtualenv of the Python package's
# checks, building it first if needed: cached under SLUICE_CACHE (default
# ~/.cache/sluice), one per checkout and python/pyproject.toml, with
# python/ installed in it editable with its test extras.
python_venv() {
	local cache=${SLUICE_CACHE:-$HOME/.cache/sluice} py=${PYTHON:-python3} stamp venv
	"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "python: need Python >= 3.10 (set PYTHON)" >&2; return 1; }
	stamp=$({ echo "python-venv 1"; "$py" -c 'import sys; print(sys.version)'; pwd; sha256sum python/pyproject.toml; } | sha256sum | cut -c1-16)
	venv=$cache/python-venv-$stamp
	mkdir -p "$cache/locks"
	(
		if command -v flock >/dev/null; then flock 9; fi
		if [ ! -f "$venv/.ready" ]; then
			echo "python: building $venv" >&2
			rm -rf "$venv"
			"$py" -m venv "$venv"
			PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q -e "./python[test]" >&2
			touch "$venv/.ready"
		fi
	) 9>"$cache/locks/python-venv.lock"
	echo "$venv"
}

# python_tests runs the Python package's pytest suite: against
# SLUICE_TEST_BROKERS when set, else against `sluice dev` built from this
# checkout.
python_tests() (
	local venv
	venv=$(python_venv)
	cd python
	GO=$GO "$venv/bin/python" -m pytest -q -p no:cacheprovider
)

python() (
	echo "== python: ruff, mypy --strict, pytest (conformance on the Python replica)"
	local venv
	venv=$(python_venv)
	(cd python && "$venv/bin/ruff" check . && "$venv/bin/ruff" format --check . && "$venv/bin/mypy")
	python_tests
)

if [ $# -eq 0 ]; then
	set -- gen helm unit fuzz e2e real secure tf clients smoke python ui
fi
for tier in "$@"; do
	case "$tier" in
	unit | fuzz | e2e | real | secure | tf | gen | clients | smoke | python | ui) "$tier" ;;
	helm) helm_tier ;;
	kafka) real ;; # the tier's former name
	*) echo "unknown tier $tier (gen, helm, unit, fuzz, e2e, real, secure, tf, clients, smoke, python, ui)" >&2; exit 2 ;;
	esac
done
