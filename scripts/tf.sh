#!/usr/bin/env bash
# scripts/tf.sh — libtensorflow (the TensorFlow C API) for the `tensorflow`
# build tag of replicas/runtime/tensorflow, taken from the official
# tensorflow-cpu wheel on PyPI. No tarball downloads: the wheel's
# libtensorflow_cc.so.2 exports the whole C API (TF_NewGraph,
# TF_LoadSessionFromSavedModel, TF_SessionRun, TFE_*, ...), and the wheel
# ships the C API headers under tensorflow/include/.
#
#   scripts/tf.sh install    download the pinned wheel (pip download --no-deps)
#                            and unpack the two shared libraries and the C API
#                            headers into the cache (idempotent; ~15 s)
#   scripts/tf.sh env        install if needed, then print on stdout the
#                            exports that build and run code using
#                            github.com/wamuir/graft/tensorflow:
#                              eval "$(scripts/tf.sh env)"
#                              go test -tags tensorflow ./replicas/runtime/tensorflow/
#   scripts/tf.sh prefix     install if needed, print the prefix directory
#   scripts/tf.sh symbols    print `nm -D --defined-only` evidence that the
#                            library exports the C API symbols graft calls
#   scripts/tf.sh venv       create a cached virtualenv with the same wheel
#                            (plus its dependencies) for scripts/make_fixtures.py;
#                            prints the venv's python on stdout
#   scripts/tf.sh fixtures   regenerate replicas/runtime/testdata/ with
#                            scripts/make_fixtures.py in that virtualenv
#
# Cache layout ($SLUICE_CACHE, default $HOME/.cache/sluice):
#   tensorflow-<ver>/wheel/<the .whl>            kept for `venv` (same bits)
#   tensorflow-<ver>/lib/libtensorflow_cc.so.2   the C API (+ C++ runtime)
#   tensorflow-<ver>/lib/libtensorflow_framework.so.2
#   tensorflow-<ver>/lib/libtensorflow.so{,.2} -> libtensorflow_cc.so.2
#                                                (graft links -ltensorflow)
#   tensorflow-<ver>/lib/libtensorflow_framework.so -> libtensorflow_framework.so.2
#   tensorflow-<ver>/include/{tensorflow/c,tensorflow/core/platform,tsl,xla/tsl/c}
#   tensorflow-<ver>/venv/                       from `venv` only
#   tensorflow-<ver>/.installed                  stamp written last
#
# Environment: SLUICE_CACHE (cache root), PYTHON (interpreter for pip and the
# venv; default python3.11, python3). Diagnostics go to stderr; stdout carries
# only what each command documents. Nothing is written into the repository
# except by `fixtures`.
set -euo pipefail

# ---- pinned versions --------------------------------------------------------
# graft v0.9.0 is generated from TensorFlow v2.17.0's C API; 2.17.1 is the
# last patch release of that line (same C API, bug fixes only).
TF_VERSION=2.17.1
TF_WHEEL=tensorflow_cpu-${TF_VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
TF_WHEEL_SHA256=4935d35d15924602605c839cb6cd5a578f89f626d8736f62065fe3a089b63b6f

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE_ROOT=${SLUICE_CACHE:-$HOME/.cache/sluice}
PREFIX=$CACHE_ROOT/tensorflow-$TF_VERSION
STAMP=$PREFIX/.installed
export PIP_DISABLE_PIP_VERSION_CHECK=1

die() { echo "tf.sh: $*" >&2; exit 1; }
log() { echo "tf.sh: $*" >&2; }

pick_python() {
	local py
	for py in ${PYTHON:-} python3.11 python3; do
		[ -n "$py" ] || continue
		if command -v "$py" >/dev/null 2>&1 &&
			"$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
			echo "$py"
			return
		fi
	done
	# pip download with explicit --platform/--python-version works from any
	# python3; only `venv` needs 3.11 itself.
	command -v python3 >/dev/null 2>&1 && { echo python3; return; }
	die "need python3 (3.11 for the fixtures venv); set PYTHON"
}

# Exclusive flock on $1 using fd 9, released when the script exits.
take_lock() {
	command -v flock >/dev/null 2>&1 || return 0
	mkdir -p "$(dirname "$1")"
	exec 9>"$1"
	flock -w 900 9 || die "timed out waiting for lock $1"
}

installed() {
	[ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$TF_VERSION" ] &&
		[ -e "$PREFIX/lib/libtensorflow.so" ] && [ -f "$PREFIX/include/tensorflow/c/c_api.h" ]
}

install() {
	installed && return 0
	take_lock "$CACHE_ROOT/locks/install-tensorflow-$TF_VERSION.lock"
	installed && return 0
	command -v unzip >/dev/null 2>&1 || die "unzip not found (apt-get install unzip)"
	local py start
	py=$(pick_python)
	start=$(date +%s)
	mkdir -p "$PREFIX/wheel"
	if [ ! -f "$PREFIX/wheel/$TF_WHEEL" ]; then
		log "downloading tensorflow-cpu==$TF_VERSION (~221 MB) ..."
		"$py" -m pip download --quiet --no-deps --only-binary=:all: \
			--implementation cp --python-version 3.11 --abi cp311 \
			--platform manylinux2014_x86_64 \
			-d "$PREFIX/wheel.tmp" "tensorflow-cpu==$TF_VERSION" >&2 ||
			die "pip download tensorflow-cpu==$TF_VERSION failed"
		[ -f "$PREFIX/wheel.tmp/$TF_WHEEL" ] || die "pip did not produce $TF_WHEEL"
		mv "$PREFIX/wheel.tmp/$TF_WHEEL" "$PREFIX/wheel/$TF_WHEEL"
		rm -rf "$PREFIX/wheel.tmp"
	fi
	local sum
	sum=$(sha256sum "$PREFIX/wheel/$TF_WHEEL" | cut -d' ' -f1)
	if [ "$sum" != "$TF_WHEEL_SHA256" ]; then
		rm -f "$PREFIX/wheel/$TF_WHEEL"
		die "sha256 mismatch for $TF_WHEEL: got $sum, want $TF_WHEEL_SHA256"
	fi

	log "unpacking libraries and C API headers ..."
	local tmp=$PREFIX/unpack.tmp
	rm -rf "$tmp" "${PREFIX:?}/lib" "${PREFIX:?}/include"
	mkdir -p "$tmp"
	unzip -q -o "$PREFIX/wheel/$TF_WHEEL" -d "$tmp" \
		'tensorflow/libtensorflow_cc.so.2' \
		'tensorflow/libtensorflow_framework.so.2' \
		'tensorflow/include/tensorflow/c/*' \
		'tensorflow/include/tensorflow/core/platform/ctstring*' \
		'tensorflow/include/tsl/platform/ctstring*' \
		'tensorflow/include/xla/tsl/c/*' ||
		die "unzip failed"
	mkdir -p "$PREFIX/lib"
	mv "$tmp/tensorflow/libtensorflow_cc.so.2" "$tmp/tensorflow/libtensorflow_framework.so.2" "$PREFIX/lib/"
	mv "$tmp/tensorflow/include" "$PREFIX/include"
	rm -rf "$tmp"
	# graft's lib.go says `#cgo LDFLAGS: -ltensorflow`; the wheel's C API
	# lives in libtensorflow_cc.so.2 (SONAME libtensorflow_cc.so.2, so
	# binaries record that name and the symlinks are needed only to link).
	ln -sfn libtensorflow_cc.so.2 "$PREFIX/lib/libtensorflow.so"
	ln -sfn libtensorflow_cc.so.2 "$PREFIX/lib/libtensorflow.so.2"
	ln -sfn libtensorflow_framework.so.2 "$PREFIX/lib/libtensorflow_framework.so"
	nm -D --defined-only "$PREFIX/lib/libtensorflow_cc.so.2" 2>/dev/null |
		grep ' T TF_LoadSessionFromSavedModel' >/dev/null ||
		die "libtensorflow_cc.so.2 does not export TF_LoadSessionFromSavedModel"
	echo "$TF_VERSION" >"$STAMP"
	log "installed libtensorflow $TF_VERSION in $PREFIX ($(($(date +%s) - start)) s)"
}

print_env() {
	local lib=$PREFIX/lib inc=$PREFIX/include
	# Default cgo flags are "-O2 -g"; keep them. graft's own
	# `#cgo LDFLAGS: -ltensorflow` finds lib/libtensorflow.so; everything it
	# calls is exported by libtensorflow_cc.so.2, which finds
	# libtensorflow_framework.so.2 next to it through its $ORIGIN runpath.
	# The rpath lets binaries run without LD_LIBRARY_PATH.
	cat <<EOF
export SLUICE_TF_PREFIX='$PREFIX'
export CGO_ENABLED=1
export CGO_CFLAGS='-O2 -g -I$inc'
export CGO_LDFLAGS='-O2 -g -L$lib -Wl,-rpath,$lib'
export LD_LIBRARY_PATH='$lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export TF_CPP_MIN_LOG_LEVEL=\${TF_CPP_MIN_LOG_LEVEL:-2}
EOF
}

symbols() {
	local s
	for s in TF_Version TF_NewGraph TF_DeleteGraph TF_NewSession TF_LoadSessionFromSavedModel \
		TF_SessionRun TF_CloseSession TF_DeleteSession TF_NewTensor TF_AllocateTensor \
		TF_DeleteTensor TF_TensorData TF_GraphOperationByName TFE_NewContext; do
		nm -D --defined-only "$PREFIX/lib/libtensorflow_cc.so.2" | grep -E " $s(@|\$)" |
			sed 's/^/libtensorflow_cc.so.2: /' || echo "libtensorflow_cc.so.2: MISSING $s"
	done
	echo "exported TF_*/TFE_* text symbols: $(nm -D --defined-only "$PREFIX/lib/libtensorflow_cc.so.2" | grep -cE ' T TFE?_')"
}

venv() {
	local v=$PREFIX/venv
	if [ -x "$v/bin/python" ] && [ -f "$v/.stamp" ] && [ "$(cat "$v/.stamp")" = "$TF_VERSION" ]; then
		echo "$v/bin/python"
		return
	fi
	install
	take_lock "$CACHE_ROOT/locks/venv-tensorflow-$TF_VERSION.lock"
	if ! { [ -x "$v/bin/python" ] && [ -f "$v/.stamp" ] && [ "$(cat "$v/.stamp")" = "$TF_VERSION" ]; }; then
		local py
		py=$(pick_python)
		"$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
			die "the fixtures venv needs python3.11 (the wheel is cp311); set PYTHON"
		log "creating $v (tensorflow-cpu $TF_VERSION from the cached wheel) ..."
		rm -rf "$v"
		"$py" -m venv "$v"
		"$v/bin/python" -m pip install --quiet "$PREFIX/wheel/$TF_WHEEL" >&2 ||
			die "pip install of the tensorflow wheel into $v failed"
		echo "$TF_VERSION" >"$v/.stamp"
	fi
	echo "$v/bin/python"
}

case "${1:-}" in
install) install ;;
env) install >&2; print_env ;;
prefix) install >&2; echo "$PREFIX" ;;
symbols) install >&2; symbols ;;
venv) venv ;;
fixtures)
	py=$(venv)
	TF_CPP_MIN_LOG_LEVEL=2 "$py" "$ROOT/scripts/make_fixtures.py" "$ROOT/replicas/runtime/testdata"
	;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
