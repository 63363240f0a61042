#!/usr/bin/env bash
# The detection matrix: each seeded bug under the faults that expose it, run until caught
# (at most RUNS runs of SECS seconds), then the healthy node under each fault kind.
#
#   scripts/matrix.sh [RUNS] [SECS] [SEED]
#
# The default schedule's column: what a user gets with no fault flags at all. For each
# seeded bug, ATTEMPTS attempts of `chaos-runner test --time-limit 30 --test-count 4`
# (2 minutes: seeds BASE+4a .. BASE+4a+3), counting attempts that caught it; then the
# healthy node in HEALTHY default runs and in SOLO runs of each message fault alone.
#
#   scripts/matrix.sh default [ATTEMPTS] [BASE] [HEALTHY] [SOLO] [BUGS...]
#
# CHAOS_NET=netns runs every test with --net netns (root; the matrix's netns column).
# MATRIX_NEMESIS=KINDS gives the default column's runs (bugs and healthy) that --nemesis,
# e.g. all,wipe for rejoin-empty-voter or all,membership for unsafe-membership (both
# opt-in); MATRIX_ARGS adds any flags to
# them (split on spaces), e.g. "--nemesis-targets every,majority --staggered-kills".
# CHAOS_BIN=PATH runs that chaos-runner (and the raft-node beside it): a copy, so a build
# during a long matrix does not change the binary under test.
#
# Prints a Markdown table for BENCHMARKS.md. Needs a release build (cargo build --release)
# and python3. "Test time to the first anomaly" counts the full runs before the catching
# one, plus the time into that run at which the first operation no order explains returned.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
secs=${2:-30}
seed=${3:-1000}
bin=${CHAOS_BIN:-./target/release/chaos-runner}
net=(--net "${CHAOS_NET:-proxy}")
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 3; }
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT

all_bugs=(stale-read lease-read ack-before-commit no-noop-read lost-truncate forget-vote commit-old-term commit-overreach trust-disk)
# The disk bugs need the lazy layer (root and fuse3), as the default search's power losses do.
layer=0
if [[ $(id -u) == 0 && -e /dev/fuse ]] && command -v fusermount3 >/dev/null; then
  layer=1
  all_bugs+=(no-fsync no-dir-fsync)
fi

if [[ ${1:-} == default ]]; then
  attempts=${2:-10}
  base=${3:-7000}
  healthy_runs=${4:-50}
  solo_runs=${5:-20}
  shift $(($# < 5 ? $# : 5))
  bugs=("$@")
  ((${#bugs[@]})) || bugs=("${all_bugs[@]}")
  # MATRIX_WORKLOAD=set runs the bugs and the healthy rows under that workload (still no
  # fault flags).
  # STOP_ON_UNKNOWN=1 also ends an attempt at its first UNKNOWN run (exit 2), counted apart:
  # for a bug whose signature is a cluster that cannot come back.
  workload=(--workload "${MATRIX_WORKLOAD:-register}")
  [[ -n ${MATRIX_NEMESIS:-} ]] && workload+=(--nemesis "$MATRIX_NEMESIS")
  # shellcheck disable=SC2206
  extra=(${MATRIX_ARGS:-})
  workload+=("${extra[@]}")
  echo "| bug | attempts that caught it (4 runs x 30 s each) | runs it took, per catching attempt | attempts ended UNKNOWN |"
  echo "|---|---|---|---|"
  for bug in "${bugs[@]}"; do
    caught=0
    unknown=0
    took=()
    for ((a = 0; a < attempts; a++)); do
      for ((r = 0; r < 4; r++)); do
        $bin test "${net[@]}" "${workload[@]}" --time-limit 30 --store "$store" --seed $((base + 4 * a + r)) \
          --node-arg=--unsafe-bug="$bug" >/dev/null 2>&1
        code=$?
        if ((code == 1)); then
          caught=$((caught + 1))
          took+=("$((r + 1))")
          break
        fi
        if ((code == 2)) && [[ ${STOP_ON_UNKNOWN:-0} == 1 ]]; then
          unknown=$((unknown + 1))
          break
        fi
      done
    done
    echo "| \`$bug\` | $caught of $attempts | ${took[*]:--} | $unknown |"
  done
  echo
  echo "| healthy node | runs | valid | other verdicts |"
  echo "|---|---|---|---|"
  healthy_row() { # healthy_row LABEL RUNS SEED-OFFSET ARGS...
    local label=$1 runs=$2 off=$3 valid=0 other=()
    shift 3
    for ((i = 0; i < runs; i++)); do
      $bin test "${net[@]}" --store "$store" --seed $((base + off + i)) "$@" >/dev/null 2>&1
      code=$?
      if ((code == 0)); then valid=$((valid + 1)); else other+=("exit $code"); fi
    done
    echo "| $label | $runs | $valid | ${other[*]:--} |"
  }
  healthy_args=(--time-limit 30)
  [[ -n ${MATRIX_WORKLOAD:-} ]] && healthy_args+=(--workload "$MATRIX_WORKLOAD")
  [[ -n ${MATRIX_NEMESIS:-} ]] && healthy_args+=(--nemesis "$MATRIX_NEMESIS")
  healthy_args+=("${extra[@]}")
  ((healthy_runs > 0)) && healthy_row "default schedule${MATRIX_NEMESIS:+ (--nemesis $MATRIX_NEMESIS)}${MATRIX_ARGS:+ $MATRIX_ARGS}, 30 s" "$healthy_runs" 10000 "${healthy_args[@]}"
  if ((solo_runs > 0)); then
    solo=(duplicate reorder replay drop)
    [[ ${CHAOS_NET:-} == netns ]] && solo=(duplicate reorder loss bandwidth)
    for kind in "${solo[@]}"; do
      healthy_row "$kind alone, 1 s on / 1 s off, 10 s" "$solo_runs" 20000 \
        --time-limit 10 --nemesis "$kind" --nemesis-interval 1
    done
  fi
  exit 0
fi

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
  "trust-disk|corrupt: one flipped bit in the log of a minority, leader kills; set workload at 200 ops/s|--workload set --rate 200 --nemesis corrupt,kill --nemesis-targets leader --corrupt-files newest-log,older-log --corrupt-changes flip-bit --nemesis-interval 1.5"
)
# The disk bugs need the lazy layer (root and fuse3): their rows run only where it can.
if ((layer)); then
  rows+=(
    "no-fsync|power loss of every node (lose-unsynced)|--nemesis lose-unsynced --nemesis-targets every --nemesis-interval 1.5"
    "no-dir-fsync|power loss of every node (lose-unsynced)|--nemesis lose-unsynced --nemesis-targets every --nemesis-interval 1.5"
  )
fi

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
    $bin test "${net[@]}" --time-limit "$secs" --store "$store" --seed $((seed + i)) \
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
if ((layer)); then
  healthy+=(
    "power loss of every node|--nemesis lose-unsynced --nemesis-targets every --nemesis-interval 1.5"
    "disk-full, slow-fsync|--nemesis disk-full,slow-fsync"
  )
fi
healthy+=("corrupt of a minority|--nemesis corrupt")
for row in "${healthy[@]}"; do
  IFS='|' read -r what flags <<<"$row"
  valid=0
  for ((i = 1; i <= 3; i++)); do
    # shellcheck disable=SC2086
    $bin test "${net[@]}" --time-limit "$secs" --store "$store" --seed $((seed + 100 + i)) $flags >/dev/null 2>&1 && valid=$((valid + 1))
  done
  echo "| $what | 3 | $valid |"
done
