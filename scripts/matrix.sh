#!/usr/bin/env bash
# The detection matrix: each seeded bug under the faults that expose it, run until caught
# (at most RUNS runs of SECS seconds), then the healthy node under each fault kind.
#
#   scripts/matrix.sh [RUNS] [SECS] [SEED]
#
# Prints a Markdown table for BENCHMARKS.md. Needs a release build (cargo build --release)
# and python3. "Test time to the first anomaly" counts the full runs before the catching
# one, plus the time into that run at which the first operation no order explains returned.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
secs=${2:-30}
seed=${3:-1000}
bin=./target/release/chaos-runner
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 3; }
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT

# bug | faults (for the table) | flags. Each row carries its whole schedule.
rows=(
  "stale-read|partition (isolate, halves)|--nemesis partition --partitions isolate,halves --nemesis-interval 1.5"
  "lease-read|partition isolating the leader; 12 clients, 0.5 s op timeout|--nemesis partition --nemesis-targets leader --partitions isolate --concurrency 12 --op-timeout 0.5 --nemesis-interval 1"
  "ack-before-commit|partition, kill (leader); 12 clients, 10 keys|--nemesis partition,kill --nemesis-targets leader --partitions isolate --concurrency 12 --op-timeout 0.5 --keys 10 --nemesis-interval 1.5"
  "no-noop-read|kill of every node; 5 ms link latency|--nemesis kill --nemesis-targets every --nemesis-interval 1 --link-latency 5 --concurrency 10"
  "lost-truncate|kill (every node, majority)|--nemesis kill --nemesis-targets every,majority --nemesis-interval 1.5"
  "forget-vote|5 nodes, kill and pause every 0.5 s, 100-120 ms elections|--nodes 5 --nemesis kill,pause --nemesis-targets random,majority,leader --nemesis-interval 0.5 --node-arg=--election-timeout-min-ms=100 --node-arg=--election-timeout-max-ms=120 --concurrency 10"
  "commit-old-term|5 nodes, leader kills and partitions every 0.5 s, 2 ms link latency|--nodes 5 --nemesis kill,partition --nemesis-targets leader,minority --partitions isolate,halves,majorities-ring --nemesis-interval 0.5 --link-latency 2 --concurrency 10"
  "commit-overreach|partitions around the leader every 0.5 s|--nemesis partition --nemesis-targets leader --partitions isolate,halves,majorities-ring,bridge --nemesis-interval 0.5 --concurrency 10"
)

anomaly() { # the checker's first anomaly, from a run's results.json
  sed -n 's/.*"checker_summary": "[^;]*; first anomaly: \(.*\)",$/\1/p' "$1/results.json" | head -1 | sed 's/\\"/"/g' | cut -c1-90
}
anomaly_at() { # seconds into a run at which its earliest anomalous operation returned
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("%.1f" % (min(f["op"]["ret"] for f in d["checker"]["failures"]) / 1e9))' "$1/results.json"
}

echo "| bug | faults | runs until caught | test time to the first anomaly | anomaly |"
echo "|---|---|---|---|---|"
for row in "${rows[@]}"; do
  IFS='|' read -r bug faults flags <<<"$row"
  caught="not in $runs"
  at="-"
  what="-"
  for ((i = 1; i <= runs; i++)); do
    # shellcheck disable=SC2086
    $bin test --time-limit "$secs" --store "$store" --seed $((seed + i)) \
      --node-arg=--unsafe-bug="$bug" $flags >/dev/null 2>&1
    code=$?
    if ((code == 1)); then
      caught="$i"
      at="$(awk -v done=$(((i - 1) * secs)) -v t="$(anomaly_at "$(readlink -f "$store/latest")")" \
        'BEGIN {printf "%.1f s", done + t}')"
      what=$(anomaly "$(readlink -f "$store/latest")")
      break
    fi
  done
  echo "| \`$bug\` | $faults | $caught | $at | $what |"
done

echo
echo "| healthy node | runs | valid |"
echo "|---|---|---|"
# The healthy node under each fault kind, and under the schedules the bugs above need.
healthy=(
  "kill|--nemesis kill"
  "pause|--nemesis pause"
  "partition|--nemesis partition"
  "latency|--nemesis latency"
  "all|--nemesis all"
  "kill of every node, 5 ms link latency|--nemesis kill --nemesis-targets every --nemesis-interval 1 --link-latency 5 --concurrency 10"
  "5 nodes, kill and pause every 0.5 s, fast elections|--nodes 5 --nemesis kill,pause --nemesis-targets random,majority,leader --nemesis-interval 0.5 --node-arg=--election-timeout-min-ms=100 --node-arg=--election-timeout-max-ms=120 --concurrency 10"
)
for row in "${healthy[@]}"; do
  IFS='|' read -r what flags <<<"$row"
  valid=0
  for ((i = 1; i <= 3; i++)); do
    # shellcheck disable=SC2086
    $bin test --time-limit "$secs" --store "$store" --seed $((seed + 100 + i)) $flags >/dev/null 2>&1 && valid=$((valid + 1))
  done
  echo "| $what | 3 | $valid |"
done
