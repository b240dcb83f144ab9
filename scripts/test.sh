#!/usr/bin/env bash
# Runs the test tiers; with no argument, all of them in order.
#   unit   go vet, then unit tests with the race detector (no broker needed)
#   fuzz   each fuzz target for a few seconds (FUZZTIME, default 5s)
#   e2e    the end-to-end suite against the embedded broker
#   real   the same suite (with the tests of the broker's refusals, OAuth
#          and ACLs), the registry, the blob stores and the autoscaler's
#          lag reader and loop, the broker restart, the Python package's
#          tests and scikit-learn models, against a real Apache Kafka
#          broker with a SASL_SSL listener and an authorizer
#          (KAFKA_SECURITY=sasl_ssl scripts/kafka.sh) and a real MinIO
#          over HTTPS (MINIO_TLS=1 scripts/minio.sh)
#   secure the whole end-to-end suite on a TLS + SCRAM-SHA-512 embedded
#          broker (SLUICE_TEST_KAFKA_SECURE=1)
#   gen    the committed generated protobuf code is what buf generates now
#   helm   the Helm chart (deploy/helm/sluice): helm lint, then helm template
#          with the default values and each ci/ values file, every rendered
#          object decoded strictly into its k8s.io/api type and checked
#          (deploy/helm/chart_test.go); helm is installed at HELM_VERSION
#   clients  tritonclient and the KServe SDK, unchanged, against `sluice dev`;
#          and scikit-learn models multiplexed by a Python deployment
#          (scripts/pyclients.sh sklearn; the real tier runs it on Kafka and MinIO)
#   tf     TensorFlow SavedModels pushed with `sluice models push` and served
#          by a model deployment of a `-tags tensorflow` build, on the real
#          tier's Kafka (SASL_SSL) and MinIO (HTTPS), driven by tritonclient
#          (scripts/pyclients.sh tf)
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

# services starts a real Kafka with a SASL_SSL listener and an authorizer
# (KAFKA_SECURITY=sasl_ssl) and a real MinIO over HTTPS (MINIO_TLS=1),
# stopped when the script exits, and exports SLUICE_TEST_BROKERS and
# SLUICE_TEST_S3_* (the CA file included). How a client connects to that
# Kafka (the SLUICE_KAFKA_* lines of scripts/kafka.sh and
# KAFKA_ADMIN_PASSWORD_FILE) goes into KAFKA_ENV, not into the script's
# environment: the other tiers' embedded brokers are plaintext;
# on_services runs a command with it. With SLUICE_TEST_BROKERS set
# already, those brokers are used as they are (their SLUICE_KAFKA_* in
# the environment when secured).
KAFKA_ENV=() SERVICES_STARTED=
services() {
	[ -n "${SLUICE_TEST_BROKERS:-}" ] && return
	SERVICES_STARTED=1
	export KAFKA_STATE_DIR=${KAFKA_STATE_DIR:-$(mktemp -d /tmp/sluice-kafka-test.XXXXXX)}
	export MINIO_STATE_DIR=${MINIO_STATE_DIR:-$(mktemp -d /tmp/sluice-minio-test.XXXXXX)}
	trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true; scripts/minio.sh stop >/dev/null 2>&1 || true' EXIT
	local kafka s3
	kafka=$(KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start)
	SLUICE_TEST_BROKERS=$(sed -n 's/^KAFKA_BROKERS=//p' <<<"$kafka")
	mapfile -t KAFKA_ENV < <(grep -v '^KAFKA_BROKERS=' <<<"$kafka")
	s3=$(MINIO_TLS=1 scripts/minio.sh start)
	eval "$s3"
	export SLUICE_TEST_BROKERS SLUICE_TEST_S3_ENDPOINT=$S3_ENDPOINT SLUICE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY \
		SLUICE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY SLUICE_TEST_S3_CA_FILE=$S3_CA_FILE
	echo "kafka (SASL_SSL) at $SLUICE_TEST_BROKERS, minio (HTTPS) at $SLUICE_TEST_S3_ENDPOINT"
}

# on_services runs a command (a function too) with the Kafka security of
# services in its environment.
on_services() (
	[ ${#KAFKA_ENV[@]} -eq 0 ] || export "${KAFKA_ENV[@]}"
	"$@"
)

# without_services runs a command (a function too) without the services
# an earlier tier started in this shell: the tiers that run on an
# embedded broker unless told otherwise (SLUICE_TEST_BROKERS set by the
# caller is kept).
without_services() (
	if [ -n "$SERVICES_STARTED" ]; then
		unset SLUICE_TEST_BROKERS SLUICE_TEST_S3_ENDPOINT SLUICE_TEST_S3_ACCESS_KEY SLUICE_TEST_S3_SECRET_KEY SLUICE_TEST_S3_CA_FILE
	fi
	"$@"
)

# with_s3 runs a command with the S3 keys and CA of a sluice process
# storing in the MinIO of services.
with_s3() (
	export SLUICE_S3_ACCESS_KEY=$SLUICE_TEST_S3_ACCESS_KEY SLUICE_S3_SECRET_KEY=$SLUICE_TEST_S3_SECRET_KEY
	[ -z "${SLUICE_TEST_S3_CA_FILE:-}" ] || export SLUICE_S3_CA_FILE=$SLUICE_TEST_S3_CA_FILE
	"$@"
)

# broker_restart runs the broker restart test alone: its figures are
# printed; when it fails, the test's whole report too (the node's stderr
# in it, not the shared platform's) and the broker's log since the
# restart, which together say why.
broker_restart() {
	local log
	log=$(mktemp "${TMPDIR:-/tmp}/sluice-broker-restart.XXXXXX.log")
	if ! SLUICE_TEST_BROKER_RESTART=1 on_services $GO test -count=1 -timeout 20m -run '^TestNodeBrokerRestart$' -v ./e2e/ >"$log" 2>&1; then
		grep -v '^time=' "$log" || true
		echo "== the broker's log since the restart (the whole output, the shared platform's too: $log)"
		tail -n 200 "${KAFKA_STATE_DIR:-}/kafka.log" 2>/dev/null || true
		return 1
	fi
	grep -E '^(=== RUN|--- |\s+broker_test|PASS|FAIL|ok)' "$log"
	rm -f -- "$log"
}

real() {
	echo "== end-to-end, real Apache Kafka over SASL_SSL with an authorizer, real MinIO over HTTPS"
	services
	on_services $GO test -count=1 -timeout 40m ./e2e/ ./registry/... ./autoscaler/
	echo "== broker restart under load (scripts/kafka.sh restart), alone"
	broker_restart
	echo "== the Python package's tests (conformance on the Python replica), real Apache Kafka over SASL_SSL"
	on_services python_tests
	echo "== scikit-learn models multiplexed by a Python deployment, weights from the real MinIO"
	on_services with_s3 scripts/pyclients.sh sklearn --real "$SLUICE_TEST_BROKERS" "$SLUICE_TEST_S3_ENDPOINT"
}

# secure runs the end-to-end suite on an embedded broker whose listener
# is TLS and takes SCRAM-SHA-512 only (TESTING.md, "Kafka security"); the
# real tier runs it on Apache Kafka over SASL_SSL.
secure() {
	echo "== Kafka security: the end-to-end suite on a TLS + SCRAM-SHA-512 embedded broker"
	# the embedded broker: not the real tier's Kafka and MinIO, whose
	# addresses that tier exported into this shell
	env -u SLUICE_TEST_BROKERS -u SLUICE_TEST_S3_ENDPOINT -u SLUICE_TEST_S3_ACCESS_KEY -u SLUICE_TEST_S3_SECRET_KEY -u SLUICE_TEST_S3_CA_FILE \
		SLUICE_TEST_KAFKA_SECURE=1 $GO test -count=1 -timeout 30m ./e2e/
}

tf() {
	echo "== TensorFlow runtime (-tags tensorflow, libraries from the tensorflow-cpu wheel)"
	(eval "$(scripts/tf.sh env)" && $GO test -count=1 -tags tensorflow ./replicas/runtime/tensorflow/)
	echo "== TensorFlow models from the registry, tritonclient, real Apache Kafka and real MinIO"
	services
	on_services with_s3 scripts/pyclients.sh tf "$SLUICE_TEST_BROKERS" "$SLUICE_TEST_S3_ENDPOINT"
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
	without_services $GO test -count=1 -v -timeout 10m ./e2e/ui/
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
	without_services python_tests
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
