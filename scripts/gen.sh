#!/usr/bin/env bash
# Generates the Go code in protos/gen/ from protos/**/*.proto with buf, and
# protos/gen/openapi/sluice.swagger.json, the OpenAPI v2 document of the
# sluice.v1 REST mapping (embedded by package protos, served by the gateway).
#
#   scripts/gen.sh          lint the protos, then regenerate protos/gen/
#   scripts/gen.sh check    regenerate into a temporary copy and exit 1 (with a
#                           summary of the differences) if the committed
#                           protos/gen/ (the OpenAPI document included) is
#                           not what the protos produce
#   scripts/gen.sh tools    only install the pinned tools
#
# Tools are built with `go install` at pinned versions into
# $SLUICE_CACHE/bin (default $HOME/.cache/sluice/bin) and reused across runs;
# each has a stamp file there recording its version, so a version bump here
# reinstalls it. Nothing but the Go module proxy is contacted: buf.yaml has no
# remote deps and buf.gen.yaml uses local plugins only.
#
# env: SLUICE_CACHE (cache root), GO (go command, default go).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
GO=${GO:-go}

BUF_VERSION=v1.50.0
# protoc-gen-go must match the google.golang.org/protobuf runtime in go.mod
# (the generated code records the generator version and checks the runtime).
PROTOC_GEN_GO_VERSION=$(awk '$1 == "google.golang.org/protobuf" { print $2; exit }' go.mod)
PROTOC_GEN_GO_VERSION=${PROTOC_GEN_GO_VERSION:-v1.36.12}
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GRPC_GATEWAY_VERSION=v2.30.0

CACHE_ROOT="${SLUICE_CACHE:-$HOME/.cache/sluice}"
BIN="${CACHE_ROOT}/bin"

die() { echo "gen.sh: $*" >&2; exit 2; }

# install NAME PACKAGE VERSION: go install PACKAGE@VERSION into $BIN unless the
# binary is there with a stamp saying VERSION.
install_tool() {
	local name="$1" pkg="$2" version="$3"
	local stamp="${BIN}/.${name}.version"
	if [[ -x "${BIN}/${name}" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
		return 0
	fi
	echo "gen.sh: installing ${name} ${version}" >&2
	rm -f "$stamp"
	# GOFLAGS is cleared so a caller's -mod=vendor etc. cannot break pkg@version.
	GOFLAGS= GOBIN="$BIN" $GO install "${pkg}@${version}" || die "go install ${pkg}@${version} failed"
	echo "$version" >"$stamp"
}

tools() {
	mkdir -p "$BIN" "${CACHE_ROOT}/locks"
	# Serialise concurrent installs into the shared cache (best effort).
	if command -v flock >/dev/null 2>&1; then
		exec 8>"${CACHE_ROOT}/locks/gen-tools.lock"
		flock -w 600 8 || die "timed out waiting for ${CACHE_ROOT}/locks/gen-tools.lock"
	fi
	install_tool buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
	install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
	install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
	install_tool protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway "$GRPC_GATEWAY_VERSION"
	install_tool protoc-gen-openapiv2 github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 "$GRPC_GATEWAY_VERSION"
	if command -v flock >/dev/null 2>&1; then
		flock -u 8
		exec 8>&-
	fi
	export PATH="${BIN}:${PATH}"
}

generate() {
	buf lint
	buf generate
}

check() {
	if [[ ! -d protos/gen ]]; then
		echo "gen.sh check: protos/gen is missing; run scripts/gen.sh" >&2
		exit 1
	fi
	CHECK_TMP="$(mktemp -d "${TMPDIR:-/tmp}/sluice-gen-check.XXXXXX")"
	trap 'rm -rf "$CHECK_TMP"' EXIT
	local tmp="$CHECK_TMP"
	# Copy only the generator inputs (not protos/gen) and generate there.
	cp buf.yaml buf.gen.yaml "$tmp/"
	if [[ -f buf.lock ]]; then cp buf.lock "$tmp/"; fi
	mkdir -p "$tmp/protos"
	tar -C protos --exclude=./gen -cf - . | tar -C "$tmp/protos" -xf -
	(cd "$tmp" && buf lint && buf generate) || die "buf lint/generate failed in the temporary copy"
	mkdir -p "$tmp/protos/gen"
	if ! diff -r -q protos/gen "$tmp/protos/gen" >"$tmp/summary" 2>&1; then
		echo "gen.sh check: protos/gen is out of date with protos/ (run scripts/gen.sh and commit the result):" >&2
		sed -e "s#${tmp}/#(regenerated) #g" "$tmp/summary" >&2
		echo "--- first lines of the diff (committed vs regenerated):" >&2
		diff -r -u protos/gen "$tmp/protos/gen" 2>/dev/null | sed -e "s#${tmp}/#(regenerated) #g" | head -n 60 >&2 || true
		exit 1
	fi
	echo "gen.sh check: protos/gen is up to date"
}

case "${1:-generate}" in
generate)
	tools
	generate
	;;
check)
	tools
	check
	;;
tools)
	tools
	;;
*)
	die "usage: scripts/gen.sh [generate|check|tools]"
	;;
esac
