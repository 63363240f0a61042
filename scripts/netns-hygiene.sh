#!/usr/bin/env bash
# After RUNS runs of `chaos-runner test --net netns` (default schedule, SECS seconds each),
# of which two are SIGKILLed mid-run and left for the next run to clean, nothing may be
# left: no namespace, TUN device, route, nftables table, node process or lock of a dead
# run. Root only. Prints what it ran and what it found; exit 1 if anything was left.
#
#   sudo scripts/netns-hygiene.sh [RUNS] [SECS]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
secs=${2:-5}
bin=./target/release/chaos-runner
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 3; }
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
snapshot() {
  {
    ip netns list | grep chaos- | sed 's/ (id.*//'
    ip -o link | grep -oE ' cr[0-9a-f]{6}[nc][0-9]*' | sed 's/^/link/'
    ip -4 route | grep -E '^198\.1[89]\.' | sed 's/^/route /'
    nft list tables 2>/dev/null | grep chaos_ || true
    pgrep -af "$store" | grep -v chaos-runner | sed 's/^/process /' || true
    for f in /run/chaos-runner/cr*.lock; do
      [[ -e $f ]] && flock -n "$f" true && echo "dead lock $f"
    done
  } | sort
}
before=$(snapshot)
codes=()
for ((i = 1; i <= runs; i++)); do
  if ((i == 5 || i == 12)); then
    $bin test --net netns --time-limit 60 --store "$store" --seed "$i" >/dev/null 2>&1 &
    pid=$!
    sleep 4
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    codes+=("killed")
  else
    $bin test --net netns --time-limit "$secs" --store "$store" --seed "$i" >/dev/null 2>&1
    codes+=("$?")
  fi
done
sleep 1
after=$(snapshot)
echo "runs: ${codes[*]}"
left=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^$')
if [[ -n $left ]]; then
  echo "left behind:"
  echo "$left"
  exit 1
fi
echo "nothing left: ip netns list, ip link, ip route, nft list tables, processes and locks are as before"
