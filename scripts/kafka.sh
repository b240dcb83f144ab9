#!/usr/bin/env bash
# scripts/kafka.sh — install and run a real single-node Apache Kafka broker
# (KRaft mode, combined broker+controller) on 127.0.0.1 for tests and
# benchmarks. No Docker and no tarball downloads: the broker and all of its
# runtime dependencies are fetched from Maven Central with `mvn`.
#
#   scripts/kafka.sh install   fetch Kafka jars into the cache (idempotent)
#   scripts/kafka.sh start     install if needed, start a broker, print
#                              KAFKA_BROKERS=127.0.0.1:<port> on stdout
#   scripts/kafka.sh stop      stop the broker and remove its state dir
#   scripts/kafka.sh stop --keep
#                              stop the broker, keep its state dir (ports,
#                              KRaft metadata, logs); the next `start` starts
#                              it again from there: same address, same
#                              topics, records and committed offsets
#   scripts/kafka.sh restart   stop --keep, then start: a broker restart on
#                              the same address (prints KAFKA_BROKERS=...)
#   scripts/kafka.sh status    print KAFKA_BROKERS=... and exit 0 if running,
#                              exit 1 otherwise
#
# A fault test stops the broker for a while and brings it back:
#   scripts/kafka.sh stop --keep; sleep 20; scripts/kafka.sh start
# A start from kept state fails (state kept) if another process took the
# port meanwhile; `stop` without --keep removes it.
#
# Security: with KAFKA_SECURITY=sasl_ssl at the first `start` (kept across
# `stop --keep` and `restart`), the broker's listener is SASL_SSL: TLS with a
# CA and a certificate made by openssl at start (for 127.0.0.1 and
# localhost), SCRAM-SHA-512 and SCRAM-SHA-256 with users made at format
# time (kafka-storage format --add-scram): "sluice" and "admin", both super
# users, random passwords in files; OAUTHBEARER too, with Kafka's
# validator of unsigned test tokens ("alg":"none", the subject is the
# principal; never for production); the StandardAuthorizer is on, so any
# other user is allowed only what ACLs give it (allow.everyone.if.no.acl.found
# is false). `start` and `status` then also print the SLUICE_KAFKA_* lines a
# Sluice process connects with, and KAFKA_ADMIN_PASSWORD_FILE.
#
# Environment:
#   KAFKA_SECURITY    "" (plaintext, the default) or sasl_ssl
#   SLUICE_CACHE      cache root (default: $HOME/.cache/sluice); jars go to
#                     $SLUICE_CACHE/kafka-<version>/lib
#   KAFKA_STATE_DIR   broker state dir (default: ${TMPDIR:-/tmp}/sluice-kafka)
#   KAFKA_TTL         seconds after which a watchdog kills the broker (3600)
#   KAFKA_START_TIMEOUT  max seconds to wait for the broker to be ready (60)
#   KAFKA_LOG_LEVEL   root log level of the broker log (default: WARN)
#   KAFKA_HEAP_OPTS   JVM heap flags (default: -Xms128m -Xmx768m)
#   JAVA              java binary (default: $JAVA_HOME/bin/java or java)
#
# Only stdout line ever printed by `start`/`status` is KAFKA_BROKERS=...;
# every diagnostic goes to stderr. Nothing is ever written into the repository.
set -euo pipefail

# ---- pinned versions --------------------------------------------------------
# Newest 4.x whose full dependency graph resolves on Maven Central (4.4.0's
# kafka_2.13 pom is published but its kafka-tools-api jar is not).
KAFKA_VERSION=4.3.1
SCALA_BINARY_VERSION=2.13
# slf4j 1.7 (what Kafka 4.x uses) -> log4j2 bridge; same log4j2 version that
# kafka-server pulls in transitively.
LOG4J_VERSION=2.25.4
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
# Bump when the set of cached artifacts changes so old caches get rebuilt.
INSTALL_RECIPE="kafka_${SCALA_BINARY_VERSION}=${KAFKA_VERSION} log4j=${LOG4J_VERSION} r1"

# ---- paths ------------------------------------------------------------------
CACHE_ROOT="${SLUICE_CACHE:-$HOME/.cache/sluice}"
KAFKA_DIR="${CACHE_ROOT}/kafka-${KAFKA_VERSION}"
LIB_DIR="${KAFKA_DIR}/lib"
INSTALL_MARKER="${KAFKA_DIR}/.installed"

STATE_DIR="${KAFKA_STATE_DIR:-${TMPDIR:-/tmp}/sluice-kafka}"
STATE_DIR="${STATE_DIR%/}"
# Everything inside the state dir (also called by the watchdog, which gets the
# state dir as an argument).
set_state_paths() {
  STATE_MARKER="${STATE_DIR}/.sluice-kafka-state"
  SERVER_PID_FILE="${STATE_DIR}/broker.pid"
  WATCHDOG_PID_FILE="${STATE_DIR}/watchdog.pid"
  BROKERS_FILE="${STATE_DIR}/brokers"
  SERVER_PROPS="${STATE_DIR}/server.properties"
  LOG4J_CONF="${STATE_DIR}/log4j2.properties"
  BROKER_LOG="${STATE_DIR}/kafka.log"
  DATA_DIR="${STATE_DIR}/data"
  SECURITY_FILE="${STATE_DIR}/security"
  TLS_DIR="${STATE_DIR}/tls"
  SASL_DIR="${STATE_DIR}/sasl"
}
set_state_paths

KAFKA_TTL="${KAFKA_TTL:-3600}"
START_TIMEOUT_S="${KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT_S=15
# A broker kept for its next start (stop --keep, restart) gets longer to
# shut down cleanly: killed, it recovers every partition's log when it
# starts again, which with thousands of partitions on a busy machine can
# take minutes.
KEEP_STOP_TIMEOUT_S=180

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

# ---- service management -----------------------------------------------------
# log, die, locks, stop, status and the watchdog come from lib/service.sh.
SERVICE_NAME=kafka.sh
SERVICE_ENV_PREFIX=KAFKA
SERVER_NOUN=broker
STATE_LOCK_PREFIX=state
# shellcheck source=SCRIPTDIR/lib/service.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

# ---- helpers ----------------------------------------------------------------
usage() {
  cat >&2 <<EOF
usage: $(basename "$0") {install|start|stop [--keep]|restart|status}

  install   fetch Apache Kafka ${KAFKA_VERSION} + runtime deps via mvn into
            ${KAFKA_DIR}/lib
  start     start a single-node KRaft broker on 127.0.0.1 (state dir:
            ${STATE_DIR}); prints KAFKA_BROKERS=127.0.0.1:<port>;
            after \`stop --keep\`, the same broker again (same port, same data)
  stop      stop the broker, its watchdog, and remove the state dir
            (--keep: keep the state dir for the next start)
  restart   stop --keep, then start: same address, same data
  status    print KAFKA_BROKERS=127.0.0.1:<port> and exit 0 if running, else exit 1

env: SLUICE_CACHE, KAFKA_STATE_DIR, KAFKA_TTL (default 3600 s),
     KAFKA_START_TIMEOUT (default 60 s), KAFKA_LOG_LEVEL, KAFKA_HEAP_OPTS, JAVA
EOF
}

java_bin() {
  if [[ -n "${JAVA:-}" ]]; then
    printf '%s\n' "$JAVA"
  elif [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    printf '%s\n' "${JAVA_HOME}/bin/java"
  else
    printf 'java\n'
  fi
}

check_java() {
  local java ver major
  java="$(java_bin)"
  command -v "$java" >/dev/null 2>&1 || die "java not found (Kafka ${KAFKA_VERSION} needs Java 17+)"
  ver="$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${ver%%.*}"
  [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"
  if [[ "$major" =~ ^[0-9]+$ ]] && (( major < 17 )); then
    die "Kafka ${KAFKA_VERSION} needs Java 17+, found ${ver} ($java)"
  fi
}

# True if pid is alive and really is the broker of this state dir (guards
# against pid reuse). Called by lib/service.sh.
is_our_server() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(proc_cmdline "$pid")" == *"kafka.Kafka ${SERVER_PROPS}"* ]]
}

broker_address() {
  local addr
  addr="$(head -n1 "$BROKERS_FILE" 2>/dev/null || true)"
  [[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] || return 1
  printf '%s\n' "$addr"
}

# The security of the broker of this state dir: what it was started with,
# else what KAFKA_SECURITY asks for.
security_mode() {
  local mode
  mode="$(head -n1 "$SECURITY_FILE" 2>/dev/null || printf '%s' "${KAFKA_SECURITY:-}")"
  case "$mode" in
    ""|plaintext) printf 'plaintext\n' ;;
    sasl_ssl) printf 'sasl_ssl\n' ;;
    *) die "KAFKA_SECURITY=${mode}: want sasl_ssl or nothing (plaintext)" ;;
  esac
}

# Prints KAFKA_BROKERS=<address> if a broker from this state dir is up (the
# output of `start` and `status`), and with SASL_SSL how to connect.
running_lines() {
  local pid addr
  pid="$(read_pid "$SERVER_PID_FILE")" || return 1
  is_our_server "$pid" || return 1
  addr="$(broker_address)" || return 1
  port_open "${addr##*:}" || return 1
  printf 'KAFKA_BROKERS=%s\n' "$addr"
  security_lines
}

# With SASL_SSL, the SLUICE_KAFKA_* lines of `start` and `status`.
security_lines() {
  if [[ "$(security_mode)" == sasl_ssl ]]; then
    printf 'SLUICE_KAFKA_TLS=true\n'
    printf 'SLUICE_KAFKA_CA_FILE=%s\n' "${TLS_DIR}/ca.crt"
    printf 'SLUICE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n'
    printf 'SLUICE_KAFKA_SASL_USERNAME=sluice\n'
    printf 'SLUICE_KAFKA_SASL_PASSWORD_FILE=%s\n' "${SASL_DIR}/sluice.password"
    printf 'KAFKA_ADMIN_PASSWORD_FILE=%s\n' "${SASL_DIR}/admin.password"
  fi
}

# Makes the CA, the broker's certificate (PKCS#8 key and chain in one PEM
# file, as Kafka's PEM key store reads it) and the SCRAM passwords.
make_credentials() {
  command -v openssl >/dev/null 2>&1 || die "openssl not found; KAFKA_SECURITY=sasl_ssl needs it for the certificates"
  mkdir -p "$TLS_DIR" "$SASL_DIR"
  chmod 700 "$TLS_DIR" "$SASL_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sluice test CA" \
      -keyout ca.key -out ca.crt >/dev/null 2>&1
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out broker.key >/dev/null 2>&1
    openssl req -new -key broker.key -subj "/CN=localhost" -out broker.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile san.ext -out broker.crt >/dev/null 2>&1
    cat broker.key broker.crt >broker.pem
  ) || die "openssl failed to make the broker's certificate in ${TLS_DIR}"
  local u
  for u in sluice admin; do
    od -An -N18 -tx1 /dev/urandom | tr -d ' \n' >"${SASL_DIR}/${u}.password"
  done
}

# The SASL_SSL part of server.properties.
write_security_configs() {
  local admin_pw
  admin_pw="$(cat "${SASL_DIR}/admin.password")"
  cat >>"$SERVER_PROPS" <<EOF

# SASL_SSL (KAFKA_SECURITY=sasl_ssl)
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,OAUTHBEARER
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin_pw}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# OAUTHBEARER with Kafka's unsecured validator (tokens signed with "alg":
# "none", subject = principal): for tests of token files, never production
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";
ssl.keystore.type=PEM
ssl.keystore.location=${TLS_DIR}/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=${TLS_DIR}/ca.crt
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# ANONYMOUS: the broker's own requests on the plaintext controller listener
super.users=User:admin;User:sluice;User:ANONYMOUS
EOF
}

# Kafka cluster id: 16 random bytes, URL-safe base64 without padding; Kafka's
# own generator rejects ids starting with '-'.
random_cluster_id() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break
'
  else
    "$(java_bin)" -Xmx128m -cp "${LIB_DIR}/*" \
      -Dlog4j2.configurationFile="file:${LOG4J_CONF}" \
      kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1
  fi
}

# ---- install ----------------------------------------------------------------
install_complete() {
  [[ -f "$INSTALL_MARKER" && -d "$LIB_DIR" ]] || return 1
  [[ "$(head -n1 "$INSTALL_MARKER" 2>/dev/null)" == "$INSTALL_RECIPE" ]] || return 1
  [[ -f "${LIB_DIR}/kafka_${SCALA_BINARY_VERSION}-${KAFKA_VERSION}.jar" ]]
}

write_install_pom() {
  cat >"${KAFKA_DIR}/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/kafka.sh; resolves Kafka's runtime classpath -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.sluice.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- broker (kafka.Kafka) and storage format tool (kafka.tools.StorageTool) -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_BINARY_VERSION}</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <!-- logging: slf4j 1.7 -> log4j2 (log4j-core is also pulled in by kafka-server) -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
}

cmd_install() {
  if install_complete; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found; Maven is needed to fetch Kafka ${KAFKA_VERSION}"
  check_java
  mkdir -p "$KAFKA_DIR"
  take_lock "${CACHE_ROOT}/locks/install-kafka-${KAFKA_VERSION}.lock"
  if install_complete; then # somebody else finished while we waited
    return 0
  fi

  log "installing Apache Kafka ${KAFKA_VERSION} (Scala ${SCALA_BINARY_VERSION}) via Maven into ${LIB_DIR} ..."
  local started=$SECONDS mvn_log="${KAFKA_DIR}/install.log" tmp_lib="${KAFKA_DIR}/lib.tmp"
  rm -f "$INSTALL_MARKER"
  rm -rf "$tmp_lib"
  write_install_pom
  if ! (cd "$KAFKA_DIR" && mvn -B -q -f pom.xml \
          "${MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies" \
          -DincludeScope=runtime \
          -DoutputDirectory="$tmp_lib") >"$mvn_log" 2>&1 </dev/null; then
    tail -n 40 "$mvn_log" >&2 || true
    rm -rf "$tmp_lib"
    die "mvn failed to fetch Kafka ${KAFKA_VERSION} (full log: ${mvn_log})"
  fi

  local required=(
    "kafka_${SCALA_BINARY_VERSION}-${KAFKA_VERSION}.jar"
    "kafka-clients-${KAFKA_VERSION}.jar"
    "kafka-server-${KAFKA_VERSION}.jar"
    "kafka-raft-${KAFKA_VERSION}.jar"
    "kafka-metadata-${KAFKA_VERSION}.jar"
    "log4j-slf4j-impl-${LOG4J_VERSION}.jar"
    "log4j-core-${LOG4J_VERSION}.jar"
  )
  local j
  for j in "${required[@]}"; do
    [[ -f "${tmp_lib}/${j}" ]] || { rm -rf "$tmp_lib"; die "install incomplete: ${j} missing (see ${mvn_log})"; }
  done

  rm -rf "$LIB_DIR"
  mv "$tmp_lib" "$LIB_DIR"
  {
    printf '%s\n' "$INSTALL_RECIPE"
    (cd "$LIB_DIR" && ls -1 -- *.jar)
  } >"${INSTALL_MARKER}.tmp"
  mv "${INSTALL_MARKER}.tmp" "$INSTALL_MARKER"
  log "installed $(ls -1 "$LIB_DIR" | wc -l | tr -d ' ') jars ($(du -sh "$LIB_DIR" | cut -f1)) in $((SECONDS - started))s"
}

# ---- start ------------------------------------------------------------------
write_configs() {
  local broker_port="$1" controller_port="$2" listener=PLAINTEXT
  [[ "$(security_mode)" == sasl_ssl ]] && listener=SASL_SSL
  cat >"$SERVER_PROPS" <<EOF
# generated by scripts/kafka.sh — single-node KRaft broker for tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller_port}
listeners=${listener}://127.0.0.1:${broker_port},CONTROLLER://127.0.0.1:${controller_port}
advertised.listeners=${listener}://127.0.0.1:${broker_port}
listener.security.protocol.map=${listener}:${listener},CONTROLLER:PLAINTEXT
inter.broker.listener.name=${listener}
controller.listener.names=CONTROLLER
log.dirs=${DATA_DIR}

# fast, single-replica test settings
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
EOF

  cat >"$LOG4J_CONF" <<EOF
# generated by scripts/kafka.sh — everything goes to stdout, which is
# redirected to ${BROKER_LOG}
status = warn
name = sluice-kafka
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${KAFKA_LOG_LEVEL:-WARN}
rootLogger.appenderRef.out.ref = STDOUT
# lifecycle messages (incl. "Kafka Server started", used as readiness signal)
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
EOF
}

# Start one broker attempt. Returns 0 when ready, 1 on failure, 3 when the
# failure looks like a port clash (caller retries with fresh ports).
start_attempt() {
  local java ports broker_port controller_port cluster_id
  java="$(java_bin)"
  ports="$(free_ports)"
  broker_port="${ports%% *}"
  controller_port="${ports##* }"

  rm -rf -- "$DATA_DIR"
  rm -f -- "$SERVER_PID_FILE" "$WATCHDOG_PID_FILE" "$BROKERS_FILE"
  mkdir -p "$DATA_DIR"
  write_configs "$broker_port" "$controller_port"
  local scram=()
  if [[ "$(security_mode)" == sasl_ssl ]]; then
    make_credentials
    write_security_configs
    local u m
    for u in sluice admin; do
      for m in SCRAM-SHA-512 SCRAM-SHA-256; do
        scram+=(--add-scram "${m}=[name=${u},password=$(cat "${SASL_DIR}/${u}.password")]")
      done
    done
  fi
  : >"$BROKER_LOG"

  cluster_id="$(random_cluster_id)"
  [[ -n "$cluster_id" ]] || die "could not generate a cluster id"
  if ! "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="file:${LOG4J_CONF}" \
        -cp "${LIB_DIR}/*" kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" --config "$SERVER_PROPS" "${scram[@]}" \
        >"${STATE_DIR}/format.log" 2>&1 </dev/null 9>&-; then
    cat "${STATE_DIR}/format.log" >&2 || true
    die "formatting Kafka storage failed (kafka.tools.StorageTool format)"
  fi

  launch_broker "$broker_port" "$controller_port"
}

# Starts the broker of the state dir (configured and formatted) and waits
# until it is ready. Returns like start_attempt.
launch_broker() {
  local broker_port="$1" controller_port="$2" java pid
  java="$(java_bin)"
  # shellcheck disable=SC2086
  setsid nohup "$java" ${KAFKA_HEAP_OPTS:--Xms128m -Xmx768m} \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:-UsePerfData \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:${LOG4J_CONF}" \
    -Dkafka.logs.dir="${STATE_DIR}" \
    -cp "${LIB_DIR}/*" kafka.Kafka "$SERVER_PROPS" \
    >>"$BROKER_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$SERVER_PID_FILE"
  spawn_watchdog "$pid" "$KAFKA_TTL"

  log "starting Kafka ${KAFKA_VERSION} (pid ${pid}, broker 127.0.0.1:${broker_port}, controller 127.0.0.1:${controller_port}, ttl ${KAFKA_TTL}s, log ${BROKER_LOG})"

  local deadline=$((SECONDS + START_TIMEOUT_S))
  while (( SECONDS < deadline )); do
    if ! is_our_server "$pid"; then
      break
    fi
    if grep -q 'Kafka Server started' "$BROKER_LOG" 2>/dev/null && port_open "$broker_port"; then
      printf '127.0.0.1:%s\n' "$broker_port" >"$BROKERS_FILE"
      return 0
    fi
    sleep 0.25
  done

  abort_start_attempt "$pid" "$BROKER_LOG" -e 'Address already in use'
}

# Starts the broker again from a state dir kept by `stop --keep`: the same
# configuration (so the same ports), KRaft metadata and logs; nothing is
# formatted. The previous run's log moves to kafka.log.1.
start_kept() {
  local listeners broker_port controller_port
  [[ -f "$SERVER_PROPS" && -f "${DATA_DIR}/meta.properties" ]] \
    || die "${STATE_DIR} holds no formatted broker to start again; run '$(basename "$0") stop' to clean it up"
  listeners="$(sed -n 's/^listeners=//p' "$SERVER_PROPS")"
  broker_port="$(sed -n 's/^\(PLAINTEXT\|SASL_SSL\):\/\/127\.0\.0\.1:\([0-9]*\).*/\2/p' <<<"$listeners")"
  controller_port="$(sed -n 's/.*CONTROLLER:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$listeners")"
  [[ "$broker_port" =~ ^[0-9]+$ && "$controller_port" =~ ^[0-9]+$ ]] \
    || die "cannot read the ports of ${SERVER_PROPS} (listeners=${listeners})"
  local p
  for p in "$broker_port" "$controller_port"; do
    if port_open "$p"; then
      die "port ${p} of the kept broker is taken by another process; state kept in ${STATE_DIR} (run '$(basename "$0") stop' to drop it)"
    fi
  done
  if [[ -f "$BROKER_LOG" ]]; then mv -f -- "$BROKER_LOG" "${BROKER_LOG}.1"; fi
  : >"$BROKER_LOG"
  rm -f -- "$BROKERS_FILE"
  log "starting the kept broker again from ${STATE_DIR}"
  launch_broker "$broker_port" "$controller_port" \
    || die "failed to start the kept broker (state kept in ${STATE_DIR}; '$(basename "$0") stop' removes it)"
  rm -f -- "$(kept_marker)"
}

cmd_restart() {
  cmd_stop --keep
  cmd_start
}

cmd_start() {
  cmd_install
  check_java
  command -v setsid >/dev/null 2>&1 || die "setsid not found (util-linux); needed to detach the broker"
  [[ "$KAFKA_TTL" =~ ^[0-9]+$ ]] && (( KAFKA_TTL > 0 )) || die "KAFKA_TTL must be a positive integer (seconds), got '${KAFKA_TTL}'"
  [[ "$START_TIMEOUT_S" =~ ^[0-9]+$ ]] && (( START_TIMEOUT_S > 0 )) || die "KAFKA_START_TIMEOUT must be a positive integer (seconds), got '${START_TIMEOUT_S}'"

  mkdir -p "$(dirname "$STATE_DIR")"
  take_lock "$(state_lock_file)"

  local lines
  if lines="$(running_lines)"; then
    log "broker already running (state dir ${STATE_DIR})"
    printf '%s\n' "$lines"
    return 0
  fi

  if [[ -f "$STATE_MARKER" && -f "$(kept_marker)" ]]; then
    start_kept
    printf 'KAFKA_BROKERS=%s\n' "$(broker_address)"
    security_lines
    return 0
  fi

  clear_stale_state_dir
  mkdir -p "$STATE_DIR"
  printf 'created by scripts/kafka.sh\n' >"$STATE_MARKER"
  local mode
  mode="$(security_mode)"
  printf '%s\n' "$mode" >"$SECURITY_FILE"

  # shellcheck disable=SC2119 # start_attempt takes no arguments
  if start_with_retries; then
    printf 'KAFKA_BROKERS=%s\n' "$(broker_address)"
    security_lines
    return 0
  fi
  die "failed to start Kafka (state kept in ${STATE_DIR} for inspection; run '$(basename "$0") stop' to clean up)"
}

# ---- main -------------------------------------------------------------------
# install/start/stop/restart/status/__watchdog dispatch (lib/service.sh).
service_main "$@"
