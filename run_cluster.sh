#!/usr/bin/env bash
# Runs a local 3-node raft-node cluster on loopback.
#
#   ./run_cluster.sh start        build (if needed) and start nodes 1-3, wait for a leader
#   ./run_cluster.sh status       each node's /client/status
#   ./run_cluster.sh watchlogs    follow every node's log
#   ./run_cluster.sh killnode N   SIGKILL node N (its data stays)
#   ./run_cluster.sh startnode N  start node N again from its data
#   ./run_cluster.sh stop         SIGTERM all nodes
#   ./run_cluster.sh clean        stop and delete all data
#
# Node N: transport port 800N, client API port 900N, data and log under $RAFT_CLUSTER_DIR
# (default: ./cluster-data). RAFT_NODE_BIN overrides the binary; extra flags for every
# node go in RAFT_NODE_ARGS.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")" && pwd)
DATA=${RAFT_CLUSTER_DIR:-$ROOT/cluster-data}
BIN=${RAFT_NODE_BIN:-$ROOT/target/release/raft-node}
NODES=(1 2 3)

die() { echo "run_cluster.sh: $*" >&2; exit 1; }

pid_of() {
  local f="$DATA/n$1.pid"
  [[ -f $f ]] || return 1
  local pid
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  # The pid must still be our node, not a recycled pid.
  grep -q "raft-node" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

check_node() {
  [[ $1 =~ ^[123]$ ]] || die "node must be 1, 2 or 3 (got '${1:-}')"
}

build() {
  if [[ -z ${RAFT_NODE_BIN:-} ]]; then
    echo "building raft-node (release)..."
    (cd "$ROOT" && cargo build --release --quiet -p raft-node) || die "build failed"
  fi
  [[ -x $BIN ]] || die "no raft-node binary at $BIN"
}

start_node() { # start_node N: a node with no data asks the others, then founds or rejoins
  local i=$1
  if pid=$(pid_of "$i"); then
    echo "node $i already running (pid $pid)"
    return
  fi
  local peers=()
  for j in "${NODES[@]}"; do
    [[ $j == "$i" ]] || peers+=("$j=127.0.0.1:800$j")
  done
  mkdir -p "$DATA"
  # shellcheck disable=SC2086
  nohup "$BIN" --id "$i" --transport-port "800$i" --api-port "900$i" \
    --data-dir "$DATA/n$i" --peers "$(IFS=,; echo "${peers[*]}")" ${RAFT_NODE_ARGS:-} \
    >>"$DATA/n$i.log" 2>&1 </dev/null &
  echo $! >"$DATA/n$i.pid"
  echo "node $i started (pid $!, api http://127.0.0.1:900$i, log $DATA/n$i.log)"
}

api_get() {
  curl -s --max-time 2 "http://127.0.0.1:900$1$2" 2>/dev/null || true
}

wait_leader() {
  command -v curl >/dev/null || { echo "(curl not installed: not waiting for a leader)"; return; }
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    for i in "${NODES[@]}"; do
      if ! pid_of "$i" >/dev/null; then
        echo "node $i exited; the end of its log:" >&2
        tail -n 20 "$DATA/n$i.log" >&2
        exit 1
      fi
      if api_get "$i" /client/status | grep -q '"role":"leader"'; then
        echo "leader: node $i (term $(api_get "$i" /client/status | sed -E 's/.*"term":([0-9]+).*/\1/'))"
        LEADER=$i
        return
      fi
    done
    sleep 0.2
  done
  die "no leader after 15 s; see $DATA/n*.log"
}

stop_all() {
  local pids=()
  for i in "${NODES[@]}"; do
    if pid=$(pid_of "$i"); then
      kill -TERM "$pid" && pids+=("$pid")
    fi
    rm -f "$DATA/n$i.pid"
  done
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "stopped ${#pids[@]} node(s)"
}

cmd=${1:-}
case $cmd in
  start)
    build
    # No flag founds the cluster: nodes with no data ask every member, and found a new
    # cluster when all are new, or rejoin (catching up first) when some hold data.
    for i in "${NODES[@]}"; do start_node "$i"; done
    wait_leader
    # Writes go to the leader (a follower answers 503 not_leader, naming it).
    echo "try: curl -XPOST localhost:900${LEADER:-1}/kv/hello -d '{\"value\":\"world\"}'"
    ;;
  status)
    for i in "${NODES[@]}"; do
      if pid=$(pid_of "$i"); then
        echo "node $i (pid $pid): $(api_get "$i" /client/status)"
      else
        echo "node $i: not running"
      fi
    done
    ;;
  watchlogs)
    ls "$DATA"/n*.log >/dev/null 2>&1 || die "no logs in $DATA; start the cluster first"
    exec tail -n 20 -F "$DATA"/n*.log
    ;;
  killnode)
    check_node "${2:-}"
    pid=$(pid_of "$2") || die "node $2 is not running"
    kill -KILL "$pid"
    rm -f "$DATA/n$2.pid"
    echo "node $2 killed (SIGKILL)"
    ;;
  startnode)
    check_node "${2:-}"
    [[ -x $BIN ]] || build
    start_node "$2"
    ;;
  stop) stop_all ;;
  clean)
    stop_all
    rm -rf "$DATA"
    echo "removed $DATA"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    [[ -z $cmd || $cmd == help || $cmd == -h || $cmd == --help ]] || exit 2
    ;;
esac
