#!/usr/bin/env bash
# Runs a local 3-node raft-node cluster on loopback.
#
#   ./run_cluster.sh start        build (if needed) and start nodes 1-3, wait for a leader
#   ./run_cluster.sh status       each node's /client/status
#   ./run_cluster.sh watchlogs    follow every node's log
#   ./run_cluster.sh killnode N   SIGKILL node N (its data stays)
#   ./run_cluster.sh startnode N  start node N again from its data
#   ./run_cluster.sh addnode N    start a new node N (4-9) and add it: a learner first,
#                                 promoted to voter once it has caught up
#   ./run_cluster.sh removenode N remove node N from the cluster, stop it, delete its data
#   ./run_cluster.sh transfer N   hand the leadership to node N
#   ./run_cluster.sh members      the leader's view of the membership
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
  [[ $1 =~ ^[1-9]$ ]] || die "node must be 1 to 9 (got '${1:-}')"
}

# The nodes this script knows: the founding three and any added since.
known_nodes() {
  NODES=(1 2 3)
  local d
  for d in "$DATA"/n[4-9]; do
    [[ -d $d ]] && NODES+=("${d##*/n}")
  done
  return 0
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
  # A node added at run time starts knowing the voters it joins (saved by addnode), so
  # it never counts itself a voter before the cluster made it one.
  local voters=()
  [[ -f $DATA/n$i.voters ]] && voters=(--voters "$(cat "$DATA/n$i.voters")")
  # shellcheck disable=SC2086
  nohup "$BIN" --id "$i" --transport-port "800$i" --api-port "900$i" \
    --data-dir "$DATA/n$i" --peers "$(IFS=,; echo "${peers[*]}")" "${voters[@]}" \
    ${RAFT_NODE_ARGS:-} >>"$DATA/n$i.log" 2>&1 </dev/null &
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

need_curl() {
  command -v curl >/dev/null || die "this command needs curl"
}

# Sets LEADER to the running node that leads, waiting up to 15 s; nodes that are down
# (killed, removed) are skipped.
find_leader() {
  local deadline=$((SECONDS + 15)) i
  while ((SECONDS < deadline)); do
    for i in "${NODES[@]}"; do
      if pid_of "$i" >/dev/null && api_get "$i" /client/status | grep -q '"role":"leader"'; then
        LEADER=$i
        return
      fi
    done
    sleep 0.2
  done
  die "no running node leads; see $DATA/n*.log"
}

# Sends METHOD PATH [BODY] to the leader; prints the HTTP status and the body.
to_leader() {
  find_leader
  curl -s --max-time 10 -o "$DATA/.reply" -w '%{http_code}' -X "$1" \
    "http://127.0.0.1:900$LEADER$2" ${3:+-d "$3"} || true
  echo " $(cat "$DATA/.reply" 2>/dev/null)"
}

stop_node() { # stop_node N: SIGTERM, then SIGKILL after 5 s
  local pid
  pid=$(pid_of "$1") || return 0
  kill -TERM "$pid"
  local deadline=$((SECONDS + 5))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DATA/n$1.pid"
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

known_nodes
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
  addnode)
    [[ ${2:-} =~ ^[4-9]$ ]] || die "a new node is 4 to 9 (got '${2:-}')"
    need_curl
    n=$2
    [[ -d $DATA/n$n ]] && die "node $n already has data in $DATA/n$n; removenode it first"
    [[ -x $BIN ]] || build
    members=$(to_leader GET /cluster/members)
    voters=$(sed -E 's/.*"voters":\[([0-9,]*)\].*/\1/' <<<"$members")
    [[ $voters =~ ^[0-9,]+$ ]] || die "cannot read the voters from the leader: $members"
    mkdir -p "$DATA/n$n"
    echo "$voters" >"$DATA/n$n.voters"
    NODES+=("$n")
    start_node "$n"
    reply=$(to_leader POST /cluster/members "{\"id\":$n,\"addr\":\"127.0.0.1:800$n\"}")
    [[ $reply == 200* ]] || die "adding node $n as a learner: $reply"
    echo "node $n is a learner; promoting it once it has caught up..."
    deadline=$((SECONDS + 30))
    while :; do
      reply=$(to_leader POST /cluster/members "{\"id\":$n,\"role\":\"voter\"}")
      [[ $reply == 200* ]] && break
      ((SECONDS < deadline)) || die "node $n was not promoted within 30 s: $reply"
      sleep 0.5
    done
    echo "node $n is a voter: ${reply#200 }"
    ;;
  removenode)
    check_node "${2:-}"
    need_curl
    reply=$(to_leader DELETE "/cluster/members/$2")
    [[ $reply == 200* ]] || die "removing node $2: $reply"
    echo "node $2 removed: ${reply#200 }"
    stop_node "$2"
    rm -rf "${DATA:?}/n$2" "$DATA/n$2.voters"
    echo "node $2 stopped and its data deleted (a server that comes back is a new one)"
    ;;
  transfer)
    check_node "${2:-}"
    need_curl
    reply=$(to_leader POST /cluster/transfer-leader "{\"id\":$2}")
    [[ $reply == 202* ]] || die "transferring to node $2: $reply"
    deadline=$((SECONDS + 10))
    until api_get "$2" /client/status | grep -q '"role":"leader"'; do
      ((SECONDS < deadline)) || die "node $2 did not take over within 10 s"
      sleep 0.2
    done
    echo "node $2 leads"
    ;;
  members)
    need_curl
    to_leader GET /cluster/members
    ;;
  stop) stop_all ;;
  clean)
    stop_all
    rm -rf "$DATA"
    echo "removed $DATA"
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    [[ -z $cmd || $cmd == help || $cmd == -h || $cmd == --help ]] || exit 2
    ;;
esac
