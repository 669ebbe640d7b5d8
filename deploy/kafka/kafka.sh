#!/usr/bin/env bash
# Run real Apache Kafka (KRaft, no ZooKeeper) from Maven Central jars for tests.
# See README.md next to this file.  Progress goes to stderr; commands that
# produce an answer (start, bootstrap) print it as the last line of stdout.
# build_cds deliberately sets RUN_DIR/MODE/NODES/... inside a subshell:
# shellcheck disable=SC2030,SC2031
set -euo pipefail
export LC_NUMERIC=C  # $EPOCHREALTIME with a '.' decimal point

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
# The readiness probe asks the cluster with kafka-python: the project's virtualenv
# (make install) unless KAFKA_PYTHON names another interpreter that has it.
PROBE_PY="${KAFKA_PYTHON:-$HERE/../../.venv/bin/python}"
PROBE=("$PROBE_PY" "$HERE/probe.py")
RUN_DIR="$(realpath -m "${KAFKA_RUN_DIR:-$HERE/run}")"

HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -Djava.awt.headless=true}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
# Grace between SIGTERM and SIGKILL on stop. The last node of a 3-node
# cluster always waits broker.session.timeout.ms (5s) for a controlled-shutdown
# ack it can no longer get (quorum gone), so when the data is deleted anyway
# a short grace is enough; with KAFKA_KEEP_RUN=1 give it time to exit cleanly.
if [[ "${KAFKA_KEEP_RUN:-}" == 1 ]]; then
  STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-15}"
else
  STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-3}"
fi

say() { echo "kafka.sh: $*" >&2; }
elapsed() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }
die() { say "error: $*"; exit 1; }
need_probe() {
  "$PROBE_PY" -c 'import kafka' 2>/dev/null \
    || die "the probe needs kafka-python: run 'make install' (or set KAFKA_PYTHON to a python that has it)"
}

usage() {
  cat >&2 <<'EOF'
usage: kafka.sh <command>
  fetch              resolve the Kafka jars from Maven Central into lib/
  start single       one combined broker+controller node
  start cluster      three combined broker+controller nodes (RF 3, min ISR 2)
  kill N             SIGKILL node N (simulated crash)
  restart N [N...]   start nodes again on their existing data, wait until they are back
  stop               stop all nodes (TERM, then KILL) and delete the run data
  status             show which nodes are running
  bootstrap          print the bootstrap address list
  wait-isr [SECS]    wait until every partition has ISR == replicas
  logs N             print the path of node N's server.log
env: KAFKA_RUN_DIR, KAFKA_PORT_BASE, KAFKA_HEAP_OPTS, KAFKA_JVM_OPTS,
     KAFKA_EXTRA_PROPS, KAFKA_START_TIMEOUT, KAFKA_STOP_TIMEOUT, KAFKA_KEEP_RUN
EOF
  exit 64
}

# ---------------------------------------------------------------- fetch

pom_stamp() { sha1sum "$HERE/pom.xml" | cut -d' ' -f1; }

fetch_is_current() { [[ -f "$LIB/.stamp" && "$(cat "$LIB/.stamp")" == "$(pom_stamp)" ]]; }

fetch() {
  local force="${1:-}"
  [[ "$force" != "--force" ]] && fetch_is_current && return 0
  command -v mvn >/dev/null || die "mvn (Maven 3) is required to fetch the Kafka jars"
  mkdir -p "$HERE/target"
  # serialise concurrent fetches (parallel test sessions on a fresh checkout);
  # fd 8 only lives in this subshell, so no broker ever inherits the lock
  (
    flock -w 600 8 || die "timed out waiting for another 'kafka.sh fetch'"
    [[ "$force" != "--force" ]] && fetch_is_current && exit 0
    say "resolving Kafka jars from Maven Central into $LIB ..."
    rm -rf "$LIB"
    # (strip the colour codes maven 3.8 emits even with -B -q)
    mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" package 2>&1 \
      | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2 \
      || die "maven failed to resolve the Kafka jars"
    ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar in $LIB after maven ran"
    say "jars ready: $(find "$LIB" -name '*.jar' | wc -l) files, $(du -sh "$LIB" | cut -f1)"
    build_cds
    pom_stamp >"$LIB/.stamp"
  ) 8>"$HERE/target/fetch.lock" || exit 1
}

# Class-data-sharing archive of the broker's classes: JVM start-up is most of
# the time to readiness on this 2-core box (about -35% with the archive).  It
# is made once per jar set by running a throwaway broker that dumps the
# classes it loaded at exit.  Any failure only means starting without it.
CDS="$LIB/kafka-cds.jsa"
build_cds() {
  [[ "${KAFKA_CDS:-1}" == 1 ]] || return 0
  local tmp t0=$SECONDS
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/kafka-cds.XXXXXX")"
  rm -f "$CDS"
  say "building class-data-sharing archive (one-off, ~10s) ..."
  if (
    RUN_DIR="$tmp" MODE=single NODES=1
    # shellcheck disable=SC2034  # CONTROLLER_PORT_1 is read via controller_port
    read -r BROKER_PORT_1 CONTROLLER_PORT_1 <<<"$("${PROBE[@]}" ports 2)"
    CLUSTER_ID="$("${PROBE[@]}" cluster-id)"
    write_node_config 1
    format_node 1
    dir="$(node_dir 1)"
    # shellcheck disable=SC2046
    $(java_cmd) -XX:ArchiveClassesAtExit="$CDS.tmp" -XX:ErrorFile="$dir/logs/hs_err_%p.log" \
      -Dlog4j2.configurationFile="$HERE/log4j2.xml" -Dkafka.logs.dir="$dir/logs" \
      -cp "$LIB/*" kafka.Kafka "$dir/server.properties" </dev/null >"$dir/logs/stdout.log" 2>&1 9>&- &
    pid=$!
    trap 'kill -KILL $pid 2>/dev/null || true' EXIT
    ok=0
    "${PROBE[@]}" wait "127.0.0.1:$BROKER_PORT_1" --brokers 1 --timeout 120 --pids "$pid" \
      && "${PROBE[@]}" info "127.0.0.1:$BROKER_PORT_1" >/dev/null && ok=1
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    trap - EXIT
    [[ $ok == 1 && -s "$CDS.tmp" ]] || { tail -n 5 "$dir/logs/stdout.log" >&2; exit 1; }
    # a truncated archive would crash every later JVM (SIGBUS): prove it maps
    java -Xshare:on -XX:SharedArchiveFile="$CDS.tmp" -XX:ErrorFile="$dir/logs/hs_err_%p.log" \
      -cp "$LIB/*" -version >/dev/null 2>&1
  ); then
    mv -f "$CDS.tmp" "$CDS"
    say "CDS archive ready ($(du -h "$CDS" | cut -f1), $((SECONDS - t0))s)"
  else
    rm -f "$CDS.tmp"
    say "warning: could not build the CDS archive; brokers will start without it"
  fi
  rm -rf "$tmp"
}

# ---------------------------------------------------------------- state

STATE="$RUN_DIR/state"

load_state() {
  [[ -f "$STATE" ]] || die "nothing started (no $STATE); run 'kafka.sh start single|cluster'"
  # shellcheck disable=SC1090
  source "$STATE"
}

node_dir() { echo "$RUN_DIR/node$1"; }
broker_port() { local v="BROKER_PORT_$1"; echo "${!v}"; }
controller_port() { local v="CONTROLLER_PORT_$1"; echo "${!v}"; }

bootstrap_list() {
  local i out=""
  for ((i = 1; i <= NODES; i++)); do
    out+="${out:+,}127.0.0.1:$(broker_port "$i")"
  done
  echo "$out"
}

# alive = exists and is not a zombie (reaping depends on whoever is PID 1)
alive() {
  local st
  st="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$st" && "$st" != Z ]]
}

# pid of node N if (and only if) that process is alive and really is our broker
node_pid() {
  local pidf pid
  pidf="$(node_dir "$1")/pid"
  [[ -f "$pidf" ]] || return 1
  pid="$(cat "$pidf")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(node_dir "$1")/server.properties" || return 1
  echo "$pid"
}

check_node_arg() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] || die "node number required (1..$NODES)"
  ((1 <= $1 && $1 <= NODES)) || die "node $1 does not exist in $MODE mode (1..$NODES)"
}

# --------------------------------------------------------------- config

write_node_config() {
  local n="$1" dir voters="" i rf misr
  dir="$(node_dir "$n")"
  for ((i = 1; i <= NODES; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i")"
  done
  if [[ "$MODE" == cluster ]]; then rf=3; misr=2; else rf=1; misr=1; fi
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<EOF
# generated by kafka.sh ($MODE mode, node $n of $NODES)
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data

num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$misr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$misr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$misr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
unclean.leader.election.enable=false
# detect a killed node (and let a restarted one re-register) after ~5s, not 9s
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000

# small footprint: 2 cores shared by up to 3 JVMs plus the tests
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
EOF
  if [[ -n "${KAFKA_EXTRA_PROPS:-}" ]]; then
    { echo "# KAFKA_EXTRA_PROPS"; tr ';' '\n' <<<"$KAFKA_EXTRA_PROPS"; } >>"$dir/server.properties"
  fi
}

java_cmd() {
  # shellcheck disable=SC2206
  local heap=($HEAP_OPTS) opts=($JVM_OPTS)
  if [[ "${KAFKA_CDS:-1}" == 1 && -f "$CDS" ]]; then
    opts+=("-XX:SharedArchiveFile=$CDS")
  fi
  echo java "${heap[@]}" "${opts[@]}"
}

format_node() {
  local n="$1" dir
  dir="$(node_dir "$n")"
  # shellcheck disable=SC2046
  $(java_cmd) -Xmx256m -XX:ErrorFile="$dir/logs/hs_err_%p.log" -Dlog4j2.configurationFile="$HERE/log4j2.xml" \
    -Dkafka.logs.dir="$dir/logs" -cp "$LIB/*" kafka.tools.StorageTool format \
    -t "$CLUSTER_ID" -c "$dir/server.properties" >"$dir/logs/format.out" 2>&1 \
    || { cat "$dir/logs/format.out" >&2; die "formatting storage of node $n failed"; }
}

launch_node() {
  local n="$1" dir
  dir="$(node_dir "$n")"
  rm -f "$dir/pid"
  # New session, no terminal, every fd detached, so callers capturing our
  # stdout (subprocess.run(capture_output=True)) never wait for the broker.
  # cwd = node dir, so nothing stray lands in the caller's directory.
  # shellcheck disable=SC2046,SC2016
  setsid bash -c 'echo $$ >"$1"; cd "$2"; shift 2; exec "$@"' _ "$dir/pid" "$dir" \
    $(java_cmd) -XX:ErrorFile="$dir/logs/hs_err_%p.log" \
    -Dlog4j2.configurationFile="$HERE/log4j2.xml" -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIB/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/logs/stdout.log" 2>&1 9>&- &
  disown $!  # no "Killed" job notices from this shell
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$dir/pid" ]] && return 0
    sleep 0.02
  done
  die "node $n did not start (see $dir/logs/stdout.log)"
}

wait_ready() { # wait_ready <want-brokers> [node]  (all running nodes' pids must stay alive)
  local want="$1" node="${2:-}" pids="" i p args=()
  for ((i = 1; i <= NODES; i++)); do
    if p="$(node_pid "$i")"; then pids+="${pids:+,}$p"; fi
  done
  args=(--brokers "$want" --timeout "$START_TIMEOUT" --pids "$pids")
  [[ -n "$node" ]] && args+=(--node "$node")
  local boot="$BOOTSTRAP"
  [[ -n "$node" ]] && boot="127.0.0.1:$(broker_port "$node")"
  if ! "${PROBE[@]}" wait "$boot" "${args[@]}"; then
    for ((i = 1; i <= NODES; i++)); do
      if [[ -z "$node" || "$node" == "$i" ]]; then
        say "--- tail of $(node_dir "$i")/logs/server.log"
        grep -h '^\[' "$(node_dir "$i")/logs/server.log" 2>/dev/null | tail -n 15 >&2 || true
        tail -n 15 "$(node_dir "$i")/logs/stdout.log" >&2 2>/dev/null || true
      fi
    done
    return 1
  fi
}

# ------------------------------------------------------------- commands

take_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/.lock"
  flock -w 300 9 || die "another kafka.sh is busy with $RUN_DIR"
}

any_running() {
  local i
  for ((i = 1; i <= NODES; i++)); do node_pid "$i" >/dev/null && return 0; done
  return 1
}

clean_run_dir() {
  # remove only what we created; RUN_DIR itself may be a caller-owned directory
  local d
  for d in "$RUN_DIR"/node*; do [[ -d "$d" ]] && rm -rf "$d"; done
  rm -f "$RUN_DIR/state" "$RUN_DIR/bootstrap"
}

cmd_start() {
  local mode="${1:-}" t0=$EPOCHREALTIME t1
  case "$mode" in
    single) NODES=1 ;;
    cluster) NODES=3 ;;
    *) usage ;;
  esac
  command -v java >/dev/null || die "java (JDK 17+) is required"
  need_probe
  fetch
  take_lock
  if [[ -f "$STATE" ]]; then
    # shellcheck disable=SC1090
    source "$STATE"
    any_running && die "kafka ($MODE) is already running from $RUN_DIR; run 'kafka.sh stop' first"
    clean_run_dir
  fi
  MODE="$mode"
  case "$mode" in single) NODES=1 ;; cluster) NODES=3 ;; esac
  local ports i
  if [[ -n "${KAFKA_PORT_BASE:-}" ]]; then
    ports=""
    for ((i = 0; i < NODES; i++)); do ports+=" $((KAFKA_PORT_BASE + i))"; done
    for ((i = 0; i < NODES; i++)); do ports+=" $((KAFKA_PORT_BASE + 100 + i))"; done
  else
    ports="$("${PROBE[@]}" ports $((2 * NODES)))"
  fi
  # shellcheck disable=SC2086
  "${PROBE[@]}" check-free $ports || die "pick another KAFKA_PORT_BASE"
  read -r -a ports <<<"$ports"
  CLUSTER_ID="$("${PROBE[@]}" cluster-id)"
  {
    echo "MODE=$MODE"
    echo "NODES=$NODES"
    echo "CLUSTER_ID=$CLUSTER_ID"
    for ((i = 1; i <= NODES; i++)); do
      echo "BROKER_PORT_$i=${ports[i - 1]}"
      echo "CONTROLLER_PORT_$i=${ports[NODES + i - 1]}"
    done
  } >"$STATE"
  # shellcheck disable=SC1090
  source "$STATE"
  BOOTSTRAP="$(bootstrap_list)"
  echo "BOOTSTRAP=$BOOTSTRAP" >>"$STATE"

  for ((i = 1; i <= NODES; i++)); do write_node_config "$i"; done
  say "formatting KRaft storage (cluster id $CLUSTER_ID) ..."
  local fpids=()
  for ((i = 1; i <= NODES; i++)); do format_node "$i" & fpids+=($!); done
  for i in "${fpids[@]}"; do wait "$i" || die "storage format failed"; done
  t1=$EPOCHREALTIME
  say "starting $NODES node(s) ..."
  for ((i = 1; i <= NODES; i++)); do launch_node "$i"; done
  if ! wait_ready "$NODES"; then
    stop_nodes
    die "kafka did not become ready within ${START_TIMEOUT}s; nodes stopped, logs kept under $RUN_DIR ('kafka.sh stop' deletes them)"
  fi
  echo "$BOOTSTRAP" >"$RUN_DIR/bootstrap"
  say "$MODE ready in $(elapsed "$t0")s (format $(elapsed "$t0" "$t1")s, start $(elapsed "$t1")s); logs: $RUN_DIR/node*/logs/server.log"
  echo "$BOOTSTRAP"
}

cmd_kill() {
  load_state
  check_node_arg "${1:-}"
  take_lock
  local pid
  if ! pid="$(node_pid "$1")"; then
    say "node $1 is not running"
    return 0
  fi
  kill -KILL "$pid"
  while alive "$pid"; do sleep 0.05; done
  rm -f "$(node_dir "$1")/pid"
  say "node $1 (pid $pid) killed"
}

cmd_restart() { # restart N [N...]: launch them all first, then wait for each
  load_state
  (($#)) || die "usage: kafka.sh restart N [N...]"
  local n t0=$EPOCHREALTIME
  for n in "$@"; do check_node_arg "$n"; done
  [[ -f "$LIB/.stamp" ]] || die "no jars in $LIB (run 'kafka.sh fetch')"
  take_lock
  # Launching before waiting matters after a whole-cluster crash: one controller
  # alone has no quorum, so waiting on it before starting the others never ends.
  for n in "$@"; do
    if node_pid "$n" >/dev/null; then
      say "node $n is already running"
    else
      "${PROBE[@]}" check-free "$(broker_port "$n")" "$(controller_port "$n")" \
        || die "node $n's ports are taken by another process"
      launch_node "$n"
    fi
  done
  for n in "$@"; do
    wait_ready 1 "$n" || die "node $n did not rejoin within ${START_TIMEOUT}s (it is left running; logs: $(node_dir "$n")/logs)"
    say "node $n back in the cluster after $(elapsed "$t0")s"
  done
}

# TERM every running node, KILL whatever is left after $STOP_TIMEOUT seconds
stop_nodes() {
  local i pid pids=() running deadline=$((SECONDS + STOP_TIMEOUT))
  for ((i = 1; i <= NODES; i++)); do
    if pid="$(node_pid "$i")"; then pids+=("$pid"); fi
  done
  STOPPED=${#pids[@]}
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  while :; do
    running=()
    for pid in "${pids[@]}"; do alive "$pid" && running+=("$pid"); done
    ((${#running[@]})) || break
    if ((SECONDS >= deadline)); then
      say "still running after ${STOP_TIMEOUT}s, sending SIGKILL: ${running[*]}"
      kill -KILL "${running[@]}" 2>/dev/null || true
    fi
    sleep 0.1
  done
  rm -f "$RUN_DIR"/node*/pid
}

cmd_stop() {
  if [[ ! -f "$STATE" ]]; then
    say "nothing running (no $STATE)"
    return 0
  fi
  load_state
  take_lock
  stop_nodes
  if [[ "${KAFKA_KEEP_RUN:-}" == 1 ]]; then
    say "stopped ($STOPPED process(es)); run data kept in $RUN_DIR"
  else
    clean_run_dir
    rm -f "$RUN_DIR/.lock"
    rmdir "$RUN_DIR" 2>/dev/null || true
    say "stopped ($STOPPED process(es)); run data removed"
  fi
}

cmd_status() {
  if [[ ! -f "$STATE" ]]; then
    echo "not started"
    return 1
  fi
  load_state
  local i pid up=0
  echo "mode=$MODE nodes=$NODES bootstrap=$BOOTSTRAP run_dir=$RUN_DIR"
  for ((i = 1; i <= NODES; i++)); do
    if pid="$(node_pid "$i")"; then
      echo "node $i: running pid=$pid broker=127.0.0.1:$(broker_port "$i") controller=127.0.0.1:$(controller_port "$i")"
      up=$((up + 1))
    else
      echo "node $i: down"
    fi
  done
  ((up > 0)) && "${PROBE[@]}" info "$BOOTSTRAP" || true
  ((up > 0))
}

cmd_bootstrap() {
  load_state
  echo "$BOOTSTRAP"
}

cmd_wait_isr() {
  load_state
  "${PROBE[@]}" isr "$BOOTSTRAP" --timeout "${1:-60}"
}

case "${1:-}" in
  fetch) fetch "${2:-}" ;;
  start) cmd_start "${2:-}" ;;
  kill) cmd_kill "${2:-}" ;;
  restart) shift; cmd_restart "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  bootstrap) cmd_bootstrap ;;
  wait-isr) cmd_wait_isr "${2:-}" ;;
  logs) load_state; check_node_arg "${2:-}"; echo "$(node_dir "$2")/logs/server.log" ;;
  *) usage ;;
esac
