#!/usr/bin/env bash
# The detection matrix: each seeded bug under the faults that expose it, run until caught
# (at most RUNS runs of SECS seconds), then the healthy node under each fault kind.
#
#   scripts/matrix.sh [RUNS] [SECS] [SEED]
#
# Prints a Markdown table for BENCHMARKS.md. Needs a release build (cargo build --release).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
secs=${2:-30}
seed=${3:-1000}
bin=./target/release/chaos-runner
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 3; }
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT

rows=(
  "stale-read|partition|--nemesis partition --partitions isolate,halves"
  "lease-read|partition isolating the leader; 12 clients, 0.5 s op timeout|--nemesis partition --nemesis-targets leader --partitions isolate --concurrency 12 --op-timeout 0.5"
  "ack-before-commit|partition, kill (leader)|--nemesis partition,kill --nemesis-targets leader --partitions isolate"
  "no-noop-read|kill, partition (leader)|--nemesis kill,partition --nemesis-targets leader --partitions isolate"
  "forget-vote|kill (random, majority)|--nemesis kill --nemesis-targets random,majority"
  "commit-old-term|kill, partition (leader)|--nemesis kill,partition --nemesis-targets leader"
  "lost-truncate|kill (every node, majority)|--nemesis kill --nemesis-targets every,majority"
  "commit-overreach|partition (leader)|--nemesis partition --nemesis-targets leader --partitions isolate,halves,majorities-ring"
)

anomaly() { # the checker's first anomaly, from a run's results.json
  sed -n 's/.*"checker_summary": "[^;]*; first anomaly: \(.*\)",$/\1/p' "$1/results.json" | head -1 | cut -c1-90
}

echo "| bug | faults | runs until caught | test time to first invalid | anomaly |"
echo "|---|---|---|---|---|"
for row in "${rows[@]}"; do
  IFS='|' read -r bug faults flags <<<"$row"
  caught="not in $runs"
  at="-"
  what="-"
  for ((i = 1; i <= runs; i++)); do
    # shellcheck disable=SC2086
    $bin test --time-limit "$secs" --nemesis-interval 1.5 --store "$store" --seed $((seed + i)) \
      --node-arg=--unsafe-bug="$bug" $flags >/dev/null 2>&1
    code=$?
    if ((code == 1)); then
      caught="$i"
      at="$((i * secs)) s"
      what=$(anomaly "$(readlink -f "$store/latest")")
      break
    fi
  done
  echo "| \`$bug\` | $faults | $caught | $at | $what |"
done

echo
echo "| healthy node | runs | valid |"
echo "|---|---|---|"
for fault in kill pause partition latency all; do
  valid=0
  for ((i = 1; i <= 3; i++)); do
    $bin test --time-limit "$secs" --store "$store" --seed $((seed + 100 + i)) --nemesis "$fault" >/dev/null 2>&1 && valid=$((valid + 1))
  done
  echo "| $fault | 3 | $valid |"
done
