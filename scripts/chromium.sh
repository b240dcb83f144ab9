#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium for the dashboard's
# browser test (e2e/ui), installing Debian's package when there is none:
#   SLUICE_CHROMIUM, when set, is used as it is;
#   else a chromium on PATH;
#   else, as root, `apt-get install chromium`;
#   else (no root) the packages apt would install are downloaded with
#   `apt-get download` and unpacked under ~/.cache/sluice/chromium, and a
#   wrapper there runs the browser with their libraries.
set -euo pipefail

if [ -n "${SLUICE_CHROMIUM:-}" ]; then
	[ -x "$SLUICE_CHROMIUM" ] || { echo "chromium: SLUICE_CHROMIUM=$SLUICE_CHROMIUM is not executable" >&2; exit 1; }
	echo "$SLUICE_CHROMIUM"
	exit 0
fi
for c in chromium chromium-browser; do
	if p=$(command -v "$c"); then
		echo "$p"
		exit 0
	fi
done
if ! command -v apt-get >/dev/null; then
	echo "chromium: no chromium on PATH and no apt-get to install one; set SLUICE_CHROMIUM" >&2
	exit 1
fi

if [ "$(id -u)" = 0 ]; then
	echo "chromium: installing Debian's chromium package" >&2
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
	command -v chromium
	exit 0
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/chromium
wrapper=$cache/chromium
if [ -x "$wrapper" ]; then
	echo "$wrapper"
	exit 0
fi
echo "chromium: no root; unpacking Debian's chromium under $cache" >&2
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
# The packages apt would install here: chromium and what this system lacks of its dependencies.
pkgs=$(apt-get -s install --no-install-recommends chromium | awk '/^Inst /{print $2}')
[ -n "$pkgs" ] || { echo "chromium: apt-get finds no chromium package (run apt-get update?)" >&2; exit 1; }
# shellcheck disable=SC2086 # one word per package
(cd "$debs" && apt-get download $pkgs >&2)
rm -rf "$cache.tmp" && mkdir -p "$cache.tmp/root"
for d in "$debs"/*.deb; do
	dpkg -x "$d" "$cache.tmp/root"
done
libs=$(find "$cache.tmp/root" -name '*.so*' -printf '%h\n' | sort -u | sed "s#^$cache.tmp#$cache#" | paste -sd:)
cat >"$cache.tmp/chromium" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$cache/root/usr/lib/chromium/chromium" "\$@"
EOF
chmod +x "$cache.tmp/chromium"
rm -rf "$cache" && mv "$cache.tmp" "$cache"
echo "$wrapper"
