#!/usr/bin/env bash
# scripts/minio.sh — build and run a real single-node, single-drive MinIO
# server on 127.0.0.1 for tests and benchmarks. No Docker and no release
# downloads: the server is built once from source with `go install` through
# the Go module proxy and cached.
#
#   scripts/minio.sh install   build the pinned MinIO server into the cache
#                              (idempotent; ~4 min on 2 cores the first time)
#   scripts/minio.sh start     install if needed, start a server, print
#                                S3_ENDPOINT=127.0.0.1:<port>
#                                S3_ACCESS_KEY=<root user>
#                                S3_SECRET_KEY=<root password>
#                              on stdout (eval/export-able; also in <state>/env)
#   scripts/minio.sh stop      stop the server and remove its state dir
#   scripts/minio.sh status    print the same three lines and exit 0 if
#                              running, exit 1 otherwise
#
# TLS: with MINIO_TLS=1 the server serves HTTPS only, with a CA and a
# certificate made by openssl at start (for 127.0.0.1 and localhost, in
# <state>/certs, where MinIO reads them: --certs-dir); `start` and `status`
# then also print S3_TLS=true and S3_CA_FILE=<the CA's PEM>, what a
# Sluice process takes as --s3-tls and SLUICE_S3_CA_FILE.
#
# Environment:
#   MINIO_TLS            1: HTTPS with a self-signed CA (default: plain HTTP)
#   SLUICE_CACHE         cache root (default: $HOME/.cache/sluice); the server
#                        binary goes to $SLUICE_CACHE/bin/minio-<version>
#   MINIO_STATE_DIR      server state dir (default: ${TMPDIR:-/tmp}/sluice-minio);
#                        data lives in <state>/data, logs in <state>/minio.log
#   MINIO_TTL            seconds after which a watchdog kills the server (3600)
#   MINIO_START_TIMEOUT  max seconds to wait for the server to be ready (60)
#   MINIO_ROOT_USER      root user / S3 access key (default: random, 20 chars)
#   MINIO_ROOT_PASSWORD  root password / S3 secret key (default: random, 40 chars)
#   MINIO_BROWSER        web console on/off (default: off)
#   GO                   go binary used by install (default: go)
#
# The only stdout lines ever printed by `start`/`status` are the S3_* lines;
# every diagnostic goes to stderr. Nothing is ever written into the repository.
set -euo pipefail

# ---- pinned versions --------------------------------------------------------
# MinIO publishes no semver tags usable as Go module versions; pin a
# pseudo-version of github.com/minio/minio whose full module graph resolves
# through the Go module proxy.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
# v0.0.0-20260212201848-7aac2a2c5b7c -> 20260212201848-7aac2a2c5b7c
MINIO_VERSION_SUFFIX="${MINIO_VERSION#v0.0.0-}"
MINIO_BUILD_TIME="${MINIO_VERSION_SUFFIX%%-*}"  # 20260212201848 (UTC)
MINIO_COMMIT="${MINIO_VERSION_SUFFIX##*-}"      # 7aac2a2c5b7c
# Bump when the build recipe changes so old cached binaries get rebuilt.
INSTALL_RECIPE="${MINIO_MODULE}@${MINIO_VERSION} trimpath cgo=0 ldflags=-s,-w,version r1"

# ---- paths ------------------------------------------------------------------
CACHE_ROOT="${SLUICE_CACHE:-$HOME/.cache/sluice}"
BIN_DIR="${CACHE_ROOT}/bin"
MINIO_BIN="${BIN_DIR}/minio-${MINIO_VERSION_SUFFIX}"
INSTALL_STAMP="${BIN_DIR}/.minio-${MINIO_VERSION_SUFFIX}.stamp"
BUILD_LOG="${BIN_DIR}/.minio-${MINIO_VERSION_SUFFIX}.build.log"

STATE_DIR="${MINIO_STATE_DIR:-${TMPDIR:-/tmp}/sluice-minio}"
STATE_DIR="${STATE_DIR%/}"
# Everything inside the state dir (also called by the watchdog, which gets the
# state dir as an argument).
set_state_paths() {
  STATE_MARKER="${STATE_DIR}/.sluice-minio-state"
  SERVER_PID_FILE="${STATE_DIR}/minio.pid"
  WATCHDOG_PID_FILE="${STATE_DIR}/watchdog.pid"
  ENV_FILE="${STATE_DIR}/env"
  SERVER_LOG="${STATE_DIR}/minio.log"
  DATA_DIR="${STATE_DIR}/data"
  CERTS_DIR="${STATE_DIR}/certs"
}
set_state_paths

MINIO_TTL="${MINIO_TTL:-3600}"
START_TIMEOUT_S="${MINIO_START_TIMEOUT:-60}"
STOP_TIMEOUT_S=15
# The server may still be between fork and exec when the watchdog starts.
WATCHDOG_START_DELAY_S=1

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

# ---- service management -----------------------------------------------------
# log, die, locks, stop, status and the watchdog come from lib/service.sh.
SERVICE_NAME=minio.sh
SERVICE_ENV_PREFIX=MINIO
SERVER_NOUN=server
STATE_LOCK_PREFIX=minio-state
# shellcheck source=SCRIPTDIR/lib/service.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

# ---- helpers ----------------------------------------------------------------
usage() {
  cat >&2 <<EOF
usage: $(basename "$0") {install|start|stop|status}

  install   build MinIO ${MINIO_VERSION} with go install into
            ${MINIO_BIN}
  start     start a single-drive MinIO server on 127.0.0.1 (state dir:
            ${STATE_DIR}); prints S3_ENDPOINT=127.0.0.1:<port>,
            S3_ACCESS_KEY=<user>, S3_SECRET_KEY=<password>
  stop      stop the server, its watchdog, and remove the state dir
  status    print the S3_* lines and exit 0 if running, else exit 1

env: SLUICE_CACHE, MINIO_STATE_DIR, MINIO_TTL (default 3600 s),
     MINIO_START_TIMEOUT (default 60 s), MINIO_ROOT_USER, MINIO_ROOT_PASSWORD,
     MINIO_BROWSER (default off), GO
EOF
}

go_bin() { printf '%s\n' "${GO:-go}"; }

# True if pid is alive and really is the server of this state dir (guards
# against pid reuse). Called by lib/service.sh.
is_our_server() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(proc_cmdline "$pid")" == *"/minio-"*" server ${DATA_DIR} --address "* ]]
}

# HTTP status code of GET http(s)://127.0.0.1:<port><path> ("000" if no
# answer); HTTPS, trusting the state dir's CA, when the server has one.
http_code() {
  local port="$1" path="$2"
  if [[ -f "${CERTS_DIR}/CAs/ca.crt" ]]; then
    curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 3 \
      --cacert "${CERTS_DIR}/CAs/ca.crt" "https://127.0.0.1:${port}${path}" 2>/dev/null || true
    return
  fi
  curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 3 \
    "http://127.0.0.1:${port}${path}" 2>/dev/null || true
}

# Makes the CA and the server's certificate where MinIO reads them:
# <certs>/public.crt and private.key, the CA in <certs>/CAs.
make_certs() {
  command -v openssl >/dev/null 2>&1 || die "openssl not found; MINIO_TLS=1 needs it for the certificate"
  mkdir -p "${CERTS_DIR}/CAs"
  (
    cd "$CERTS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sluice test CA" \
      -keyout ca.key -out CAs/ca.crt >/dev/null 2>&1
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out private.key >/dev/null 2>&1
    openssl req -new -key private.key -subj "/CN=localhost" -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl x509 -req -in server.csr -CA CAs/ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile san.ext -out public.crt >/dev/null 2>&1
    rm -f ca.key server.csr san.ext CAs/ca.srl ca.srl
  ) || die "openssl failed to make the server's certificate in ${CERTS_DIR}"
}

# Value of KEY=value in the env file (no sourcing: the file is data).
env_value() {
  local key="$1" line
  [[ -f "$ENV_FILE" ]] || return 1
  line="$(grep -m1 "^${key}=" "$ENV_FILE" 2>/dev/null || true)"
  [[ -n "$line" ]] || return 1
  printf '%s\n' "${line#"${key}"=}"
}

# Prints the three S3_* lines if a server from this state dir is up (the
# output of `start` and `status`).
running_lines() {
  local pid endpoint user pass
  pid="$(read_pid "$SERVER_PID_FILE")" || return 1
  is_our_server "$pid" || return 1
  endpoint="$(env_value S3_ENDPOINT)" || return 1
  [[ "$endpoint" =~ ^127\.0\.0\.1:[0-9]+$ ]] || return 1
  user="$(env_value S3_ACCESS_KEY)" || return 1
  pass="$(env_value S3_SECRET_KEY)" || return 1
  [[ "$(http_code "${endpoint##*:}" /minio/health/live)" == 200 ]] || return 1
  printf 'S3_ENDPOINT=%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\n' "$endpoint" "$user" "$pass"
  if env_value S3_CA_FILE >/dev/null; then
    printf 'S3_TLS=true\nS3_CA_FILE=%s\n' "$(env_value S3_CA_FILE)"
  fi
}

# N random characters from [a-z0-9] (uppercase with $2 == upper).
random_string() {
  local n="$1" s=""
  while (( ${#s} < n )); do
    # od reads a fixed amount, so no SIGPIPE under pipefail.
    s+="$(od -An -N64 -tx1 /dev/urandom | tr -d ' \n')"
  done
  s="${s:0:n}"
  [[ "${2:-}" == upper ]] && s="${s^^}"
  printf '%s\n' "$s"
}

# Credentials end up unquoted in KEY=value lines meant for eval/export, so
# only characters that need no shell quoting are accepted.
check_credential() {
  local name="$1" value="$2" min="$3"
  (( ${#value} >= min )) || die "${name} must be at least ${min} characters"
  [[ "$value" =~ ^[A-Za-z0-9._+/=@%:,-]+$ ]] ||
    die "${name} may only contain [A-Za-z0-9._+/=@%:,-] (it is printed unquoted as a shell assignment)"
}

# ---- install ----------------------------------------------------------------
install_complete() {
  [[ -x "$MINIO_BIN" && -f "$INSTALL_STAMP" ]] || return 1
  [[ "$(head -n1 "$INSTALL_STAMP" 2>/dev/null)" == "$INSTALL_RECIPE" ]]
}

# Version strings the way MinIO's own build (buildscripts/gen-ldflags.go) sets
# them, derived from the pseudo-version's UTC timestamp and commit.
minio_ldflags() {
  local t="$MINIO_BUILD_TIME" pkg="${MINIO_MODULE}/cmd"
  local date="${t:0:4}-${t:4:2}-${t:6:2}" hh="${t:8:2}" mm="${t:10:2}" ss="${t:12:2}"
  printf '%s' "-s -w" \
    " -X ${pkg}.Version=${date}T${hh}:${mm}:${ss}Z" \
    " -X ${pkg}.ReleaseTag=DEVELOPMENT.${date}T${hh}-${mm}-${ss}Z" \
    " -X ${pkg}.CommitID=${MINIO_COMMIT}" \
    " -X ${pkg}.ShortCommitID=${MINIO_COMMIT}" \
    " -X ${pkg}.CopyrightYear=${t:0:4}"
}

# After a failed build: name the module versions the proxy refused, if any
# (go reports them as "<module>@<version>: reading https://...: 403 Forbidden").
report_build_failure() {
  local refused
  tail -n 40 "$BUILD_LOG" >&2 || true
  refused="$(sed -nE 's#.*[[:space:]]([^[:space:]]+@v[^[:space:]:]+): reading https?://[^[:space:]]+: (403|404|410)( .*)?$#\1 (HTTP \2)#p' \
    "$BUILD_LOG" 2>/dev/null | sort -u || true)"
  if [[ -n "$refused" ]]; then
    log "the Go module proxy refused these module versions:"
    printf '  %s\n' "$refused" >&2
    log "pin an earlier pseudo-version of ${MINIO_MODULE} (MINIO_VERSION in $(basename "$0")) whose module graph avoids them"
  fi
}

cmd_install() {
  if install_complete; then
    return 0
  fi
  local go
  go="$(go_bin)"
  command -v "$go" >/dev/null 2>&1 || die "go not found; Go is needed to build MinIO ${MINIO_VERSION}"
  mkdir -p "$BIN_DIR"
  take_lock "${CACHE_ROOT}/locks/install-minio-${MINIO_VERSION_SUFFIX}.lock" 1200
  if install_complete; then # somebody else finished while we waited
    return 0
  fi

  log "building ${MINIO_MODULE}@${MINIO_VERSION} with $("$go" env GOVERSION 2>/dev/null || echo go) into ${MINIO_BIN} (takes a few minutes) ..."
  local started=$SECONDS gobin
  # Leftovers of an interrupted build (we hold the install lock, so no other
  # build is running).
  rm -rf -- "${BIN_DIR}"/.minio-build.*
  gobin="$(mktemp -d "${BIN_DIR}/.minio-build.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf -- '${gobin}'" EXIT
  rm -f -- "$INSTALL_STAMP"
  # Build outside any module/workspace (cwd = cache), with a controlled
  # GOFLAGS so the caller's -mod=... etc. cannot interfere.
  if ! (cd "$CACHE_ROOT" && env GOBIN="$gobin" GOFLAGS=-trimpath CGO_ENABLED=0 GOWORK=off \
          "$go" install -ldflags "$(minio_ldflags)" "${MINIO_MODULE}@${MINIO_VERSION}") \
          >"$BUILD_LOG" 2>&1 </dev/null; then
    rm -rf -- "$gobin"
    report_build_failure
    die "go install ${MINIO_MODULE}@${MINIO_VERSION} failed (full log: ${BUILD_LOG})"
  fi
  if [[ ! -x "${gobin}/minio" ]] || ! "${gobin}/minio" --version >>"$BUILD_LOG" 2>&1 </dev/null; then
    rm -rf -- "$gobin"
    die "go install succeeded but ${gobin}/minio does not run (see ${BUILD_LOG})"
  fi
  mv -f -- "${gobin}/minio" "$MINIO_BIN"
  rm -rf -- "$gobin"
  trap - EXIT
  printf '%s\n' "$INSTALL_RECIPE" >"${INSTALL_STAMP}.tmp"
  mv -f -- "${INSTALL_STAMP}.tmp" "$INSTALL_STAMP"
  log "built $(basename "$MINIO_BIN") ($(du -h "$MINIO_BIN" | cut -f1)) in $((SECONDS - started))s"
}

# ---- start ------------------------------------------------------------------
# Start one server attempt with the given credentials. Returns 0 when ready,
# 1 on failure, 3 when the failure looks like a port clash (caller retries
# with fresh ports).
start_attempt() {
  local user="$1" pass="$2" ports api_port console_port pid
  ports="$(free_ports)"
  api_port="${ports%% *}"
  console_port="${ports##* }"

  rm -rf -- "$DATA_DIR" "$CERTS_DIR"
  rm -f -- "$SERVER_PID_FILE" "$WATCHDOG_PID_FILE" "$ENV_FILE"
  mkdir -p "$DATA_DIR"
  : >"$SERVER_LOG"
  local tls=()
  if [[ "${MINIO_TLS:-}" == 1 ]]; then
    make_certs
    tls=(--certs-dir "$CERTS_DIR")
  fi

  # Credentials go in through the environment, never the command line.
  # MINIO_BROWSER=off skips the embedded console, MINIO_UPDATE=off the update
  # check; MINIO_CONFIG_ENV_FILE / MINIO_VOLUMES / MINIO_OPTS of the caller
  # must not reconfigure the test server.
  env -u MINIO_CONFIG_ENV_FILE -u MINIO_VOLUMES -u MINIO_OPTS \
    MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$pass" \
    MINIO_BROWSER="${MINIO_BROWSER:-off}" MINIO_UPDATE=off \
    setsid nohup "$MINIO_BIN" server "$DATA_DIR" \
    --address "127.0.0.1:${api_port}" --console-address "127.0.0.1:${console_port}" --quiet "${tls[@]}" \
    >>"$SERVER_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$SERVER_PID_FILE"
  spawn_watchdog "$pid" "$MINIO_TTL"

  log "starting MinIO ${MINIO_VERSION_SUFFIX} (pid ${pid}, S3 API 127.0.0.1:${api_port}, console 127.0.0.1:${console_port}, ttl ${MINIO_TTL}s, log ${SERVER_LOG})"

  local deadline=$((SECONDS + START_TIMEOUT_S))
  while (( SECONDS < deadline )); do
    # env execs setsid execs minio: same pid, but give the exec a moment.
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    if is_our_server "$pid" && [[ "$(http_code "$api_port" /minio/health/ready)" == 200 ]]; then
      umask 077
      {
        printf 'S3_ENDPOINT=127.0.0.1:%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\n' "$api_port" "$user" "$pass"
        if (( ${#tls[@]} > 0 )); then
          printf 'S3_TLS=true\nS3_CA_FILE=%s\n' "${CERTS_DIR}/CAs/ca.crt"
        fi
      } >"${ENV_FILE}.tmp"
      mv -f -- "${ENV_FILE}.tmp" "$ENV_FILE"
      return 0
    fi
    sleep 0.2
  done

  abort_start_attempt "$pid" "$SERVER_LOG" -i -e 'address already in use'
}

cmd_start() {
  cmd_install
  command -v setsid >/dev/null 2>&1 || die "setsid not found (util-linux); needed to detach the server"
  command -v curl >/dev/null 2>&1 || die "curl not found; needed to probe /minio/health/ready"
  if ! [[ "$MINIO_TTL" =~ ^[0-9]{1,9}$ ]] || (( 10#$MINIO_TTL == 0 )); then
    die "MINIO_TTL must be a positive integer (seconds), got '${MINIO_TTL}'"
  fi
  if ! [[ "$START_TIMEOUT_S" =~ ^[0-9]{1,9}$ ]] || (( 10#$START_TIMEOUT_S == 0 )); then
    die "MINIO_START_TIMEOUT must be a positive integer (seconds), got '${START_TIMEOUT_S}'"
  fi
  MINIO_TTL=$((10#$MINIO_TTL))               # "010" is 10 s, not octal 8
  START_TIMEOUT_S=$((10#$START_TIMEOUT_S))

  local user="${MINIO_ROOT_USER:-}" pass="${MINIO_ROOT_PASSWORD:-}"
  [[ -n "$user" ]] || user="$(random_string 20 upper)"
  [[ -n "$pass" ]] || pass="$(random_string 40)"
  check_credential MINIO_ROOT_USER "$user" 3
  check_credential MINIO_ROOT_PASSWORD "$pass" 8

  mkdir -p "$(dirname "$STATE_DIR")"
  take_lock "$(state_lock_file)"

  local lines
  if lines="$(running_lines)"; then
    log "server already running (state dir ${STATE_DIR})"
    if [[ -n "${MINIO_ROOT_USER:-}" && "$(env_value S3_ACCESS_KEY)" != "$MINIO_ROOT_USER" ]]; then
      log "warning: the running server uses other credentials than MINIO_ROOT_USER; printing the running server's"
    fi
    printf '%s\n' "$lines"
    return 0
  fi

  clear_stale_state_dir
  (umask 077 && mkdir -p "$STATE_DIR")
  chmod 700 "$STATE_DIR" 2>/dev/null || true
  printf 'created by scripts/minio.sh\n' >"$STATE_MARKER"

  if start_with_retries "$user" "$pass"; then
    cat -- "$ENV_FILE"
    return 0
  fi
  die "failed to start MinIO (state kept in ${STATE_DIR} for inspection; run '$(basename "$0") stop' to clean up)"
}

# ---- main -------------------------------------------------------------------
# install/start/stop/status/__watchdog dispatch (lib/service.sh).
service_main "$@"
