# shellcheck shell=bash
# scripts/lib/service.sh — service management shared by scripts/kafka.sh and
# scripts/minio.sh: pid files, locking, the state dir, stopping the server,
# the TTL watchdog, and the stop/status commands and command dispatch.
#
# Sourced, never run. The sourcing script must set these variables (all are
# read when a function runs, so they may be set before or after sourcing):
#   SERVICE_NAME        log prefix and name in messages, e.g. kafka.sh
#   SERVICE_ENV_PREFIX  prefix of the script's env variables, e.g. KAFKA
#                       (messages name ${SERVICE_ENV_PREFIX}_STATE_DIR etc.)
#   SERVER_NOUN         what the server is called in messages: broker, server
#   CACHE_ROOT          cache root; lock files go to ${CACHE_ROOT}/locks
#   STATE_LOCK_PREFIX   name prefix of the state dir's lock file
#   STATE_DIR           the state dir (no trailing slash)
#   STATE_MARKER        file inside STATE_DIR proving the script created it
#   SERVER_PID_FILE     pid file of the server
#   WATCHDOG_PID_FILE   pid file of the watchdog
#   SCRIPT_PATH         absolute path of the script (the watchdog re-runs it)
#   START_TIMEOUT_S     max seconds a start attempt waits for readiness
#   STOP_TIMEOUT_S      seconds between SIGTERM and SIGKILL
#   KEEP_STOP_TIMEOUT_S the same for `stop --keep` (default STOP_TIMEOUT_S):
#                       a server kept for its next start may need longer
#                       to shut down cleanly
#   WATCHDOG_START_DELAY_S  optional (default 0): seconds the watchdog waits
#                       before its first check of the server pid
# and define these functions:
#   set_state_paths     set STATE_MARKER, SERVER_PID_FILE, ... from STATE_DIR
#   is_our_server PID   true if PID is alive and is the server of STATE_DIR
#   running_lines       print the stdout lines of `start`/`status` if the
#                       server is up and answering, else return 1
#   start_attempt ARGS  one start attempt: 0 ready, 1 failed, 3 port clash
#   cmd_install, cmd_start, usage
# and may define cmd_restart (then `restart` is a command) and start from a
# state dir kept by `stop --keep` (KEPT_MARKER exists in it).
# The script ends with: service_main "$@"

log() { printf '%s: %s\n' "$SERVICE_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$SERVICE_NAME" "$*" >&2; exit 1; }

# ---- processes and ports ----------------------------------------------------
# cmdline of a pid as a single space-separated line (empty for zombies/dead).
proc_cmdline() {
  local pid="$1"
  if [[ -r "/proc/${pid}/cmdline" ]]; then
    { tr '\0' ' ' <"/proc/${pid}/cmdline"; } 2>/dev/null || true # gone meanwhile: empty
  else
    ps -p "$pid" -o args= 2>/dev/null || true
  fi
}

read_pid() {
  local f="$1" pid
  [[ -f "$f" ]] || return 1
  pid="$(head -n1 "$f" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$pid"
}

is_our_watchdog() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(proc_cmdline "$pid")" == *"__watchdog"*"${STATE_DIR}"* ]]
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Two distinct free TCP ports on 127.0.0.1, space separated.
free_ports() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
    return
  fi
  # Fallback: random ports below the usual ephemeral range that nothing
  # accepts connections on.
  local ports=() p tries=0
  while (( ${#ports[@]} < 2 && tries < 200 )); do
    tries=$((tries + 1))
    p=$((20000 + RANDOM % 12000))
    [[ " ${ports[*]-} " == *" $p "* ]] && continue
    port_open "$p" && continue
    ports+=("$p")
  done
  (( ${#ports[@]} == 2 )) || die "could not find two free TCP ports on 127.0.0.1"
  printf '%s %s\n' "${ports[0]}" "${ports[1]}"
}

# ---- locks and the state dir ------------------------------------------------
# Takes an exclusive flock on "$1" using fd 9 (released when the script exits),
# waiting at most "$2" seconds (default 300). Children started in the
# background must close fd 9 (9>&-). Best effort: runs unlocked if flock is
# missing or the lock file cannot be created.
take_lock() {
  local lockfile="$1" wait_s="${2:-300}"
  command -v flock >/dev/null 2>&1 || return 0
  mkdir -p "$(dirname "$lockfile")" 2>/dev/null || return 0
  exec 9>"$lockfile" || return 0
  if ! flock -w "$wait_s" 9; then
    die "timed out waiting for lock ${lockfile}"
  fi
}

# Lock file serialising start/stop on one state dir. Lives in the cache (not
# next to the state dir) so nothing is left behind in $TMPDIR, and is never
# deleted (deleting flock files races with waiters).
state_lock_file() {
  local sum
  sum="$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)"
  printf '%s/locks/%s-%s.lock\n' "$CACHE_ROOT" "$STATE_LOCK_PREFIX" "$sum"
}

# Removes the state dir, but only if it is ours (has our marker) — so a
# mistaken <PREFIX>_STATE_DIR=$HOME can never be wiped.
remove_state_dir() {
  [[ -e "$STATE_DIR" ]] || return 0
  case "$STATE_DIR" in
    "" | "/" | "$HOME" | "$HOME/") die "refusing to remove state dir '${STATE_DIR}'" ;;
  esac
  if [[ -f "$STATE_MARKER" ]]; then
    rm -rf -- "$STATE_DIR"
  elif [[ -d "$STATE_DIR" && -z "$(ls -A "$STATE_DIR" 2>/dev/null)" ]]; then
    rmdir -- "$STATE_DIR" 2>/dev/null || true
  else
    log "warning: ${STATE_DIR} was not created by ${SERVICE_NAME} (no marker); not removing it"
  fi
}

# Before a fresh start: refuse a foreign non-empty state dir, and clear the
# leftovers of a dead server (or of one that is up but unreachable) from ours.
clear_stale_state_dir() {
  if [[ -e "$STATE_DIR" && ! -f "$STATE_MARKER" ]]; then
    if [[ -d "$STATE_DIR" && -z "$(ls -A "$STATE_DIR" 2>/dev/null)" ]]; then
      :
    else
      die "${STATE_DIR} exists but was not created by ${SERVICE_NAME}; choose another ${SERVICE_ENV_PREFIX}_STATE_DIR"
    fi
  fi
  if [[ -f "$STATE_MARKER" ]]; then
    local old
    if old="$(read_pid "$SERVER_PID_FILE")" && is_our_server "$old"; then
      log "${SERVER_NOUN} pid ${old} is alive but not answering; restarting it"
      kill_server "$old"
    fi
    kill_watchdog
    remove_state_dir
  fi
}

# ---- start ------------------------------------------------------------------
# Starts the watchdog for server PID with a TTL of TTL seconds and records its
# pid. It gets its own session/process group so `stop` can kill it (and its
# sleep) as a group; it exits on its own as soon as the server is gone.
spawn_watchdog() {
  local pid="$1" ttl="$2" wpid
  setsid nohup "${BASH:-bash}" "$SCRIPT_PATH" __watchdog "$pid" "$ttl" "$STATE_DIR" \
    >/dev/null 2>&1 </dev/null 9>&- &
  wpid=$!
  printf '%s\n' "$wpid" >"$WATCHDOG_PID_FILE"
}

# Ends a start attempt whose server PID did not become ready: says why, stops
# the server and its watchdog. Returns 3 if the server exited and LOGFILE
# matches the remaining arguments (grep options and pattern of a port clash),
# else shows the end of LOGFILE and returns 1.
abort_start_attempt() {
  local pid="$1" logfile="$2" rc=1
  shift 2
  if is_our_server "$pid"; then
    log "${SERVER_NOUN} did not become ready within ${START_TIMEOUT_S}s (load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'); raise ${SERVICE_ENV_PREFIX}_START_TIMEOUT on a busy machine)"
  else
    log "${SERVER_NOUN} process exited during startup"
    grep -q "$@" "$logfile" 2>/dev/null && rc=3
  fi
  kill_server "$pid"
  kill_watchdog
  if (( rc == 3 )); then
    return 3
  fi
  log "last lines of ${logfile}:"
  tail -n 60 "$logfile" >&2 || true
  return 1
}

# Up to three start_attempt runs (with the given arguments): after a port
# clash, and once after any other failed start (a server that hung or died
# starting, its log shown above), each with fresh ports and state. Returns
# 0 once one succeeded, else 1.
start_with_retries() {
  local attempt rc other=0
  for attempt in 1 2 3; do
    rc=0
    start_attempt "$@" || rc=$?
    if (( rc == 0 )); then
      return 0
    fi
    (( attempt < 3 )) || break
    if (( rc == 3 )); then
      log "port clash, retrying with fresh ports"
      continue
    fi
    if (( other == 0 )); then
      other=1
      log "start failed; one more attempt with fresh ports and state"
      continue
    fi
    break
  done
  return 1
}

# ---- stop -------------------------------------------------------------------
# SIGTERM, up to STOP_TIMEOUT_S seconds of grace, then SIGKILL.
kill_server() {
  local pid="$1" i
  is_our_server "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT_S * 4; i++)); do
    is_our_server "$pid" || return 0
    sleep 0.25
  done
  log "${SERVER_NOUN} pid ${pid} still alive after ${STOP_TIMEOUT_S}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    is_our_server "$pid" || return 0
    sleep 0.25
  done
  log "warning: ${SERVER_NOUN} pid ${pid} survived SIGKILL"
}

kill_watchdog() {
  local wpid pgid
  wpid="$(read_pid "$WATCHDOG_PID_FILE")" || return 0
  is_our_watchdog "$wpid" || return 0
  pgid="$(ps -o pgid= -p "$wpid" 2>/dev/null | tr -d ' ' || true)"
  if [[ "$pgid" == "$wpid" ]]; then
    kill -TERM -- "-${wpid}" 2>/dev/null || true # watchdog + its sleep
  else
    kill -TERM "$wpid" 2>/dev/null || true
  fi
}

# The marker `stop --keep` leaves in the state dir: the next `start` starts
# from it (same ports, same data) instead of clearing it.
kept_marker() { printf '%s/.kept\n' "$STATE_DIR"; }

# stop [--keep]: stop the server and its watchdog; remove the state dir, or
# with --keep leave it (configuration, ports, data) for the next start.
cmd_stop() {
  local keep=0
  case "${1:-}" in
    "") ;;
    --keep)
      declare -F cmd_restart >/dev/null || { log "stop: --keep is not supported here (no restart from kept state)"; usage; exit 2; }
      keep=1
      ;;
    *) log "stop: unknown flag '$1'"; usage; exit 2 ;;
  esac
  take_lock "$(state_lock_file)"
  if [[ ! -e "$STATE_DIR" ]]; then
    log "no ${SERVER_NOUN} state at ${STATE_DIR}; nothing to stop"
    (( keep == 0 )) || die "nothing to keep at ${STATE_DIR}"
    return 0
  fi
  local pid
  if pid="$(read_pid "$SERVER_PID_FILE")" && is_our_server "$pid"; then
    log "stopping ${SERVER_NOUN} pid ${pid}"
    if (( keep )); then STOP_TIMEOUT_S="${KEEP_STOP_TIMEOUT_S:-$STOP_TIMEOUT_S}"; fi
    kill_server "$pid"
  else
    log "${SERVER_NOUN} not running"
  fi
  kill_watchdog
  if (( keep )); then
    [[ -f "$STATE_MARKER" ]] || die "${STATE_DIR} was not created by ${SERVICE_NAME}; not keeping it"
    rm -f -- "$SERVER_PID_FILE" "$WATCHDOG_PID_FILE"
    : >"$(kept_marker)"
    log "stopped; state kept in ${STATE_DIR} for the next start"
    return 0
  fi
  remove_state_dir
  log "stopped"
  return 0
}

# ---- status -----------------------------------------------------------------
cmd_status() {
  local lines
  if lines="$(running_lines)"; then
    printf '%s\n' "$lines"
    return 0
  fi
  log "not running (state dir ${STATE_DIR})"
  return 1
}

# ---- watchdog (internal) ----------------------------------------------------
# __watchdog <server-pid> <ttl-seconds> <state-dir>: kill the server after the
# TTL, then remove its state dir. Exits early once the server is gone.
cmd_watchdog() {
  local pid="$1" ttl="$2"
  STATE_DIR="$3"
  set_state_paths
  local deadline=$((SECONDS + ttl)) left
  if (( ${WATCHDOG_START_DELAY_S:-0} > 0 )); then
    sleep "$WATCHDOG_START_DELAY_S"
  fi
  while (( SECONDS < deadline )); do
    is_our_server "$pid" || exit 0
    left=$((deadline - SECONDS))
    sleep $(( left < 5 ? (left > 0 ? left : 1) : 5 ))
  done
  is_our_server "$pid" || exit 0
  kill_server "$pid"
  # Only clean up if the state dir still belongs to the server we killed.
  if [[ "$(read_pid "$SERVER_PID_FILE" 2>/dev/null || true)" == "$pid" ]]; then
    remove_state_dir
  fi
}

# ---- main -------------------------------------------------------------------
service_main() {
  if (( $# < 1 )); then
    usage
    exit 2
  fi
  case "$1" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    restart)
      declare -F cmd_restart >/dev/null || { log "unknown command 'restart'"; usage; exit 2; }
      cmd_restart
      ;;
    __watchdog)
      (( $# == 4 )) || exit 2
      cmd_watchdog "$2" "$3" "$4"
      ;;
    -h | --help | help)
      usage
      exit 0
      ;;
    *)
      log "unknown command '$1'"
      usage
      exit 2
      ;;
  esac
}
