#!/usr/bin/env bash
# raft-node and etcd side by side: 3 nodes, fsync on, 100-byte values, concurrency 1, 16
# and 128, write-only and 50/50 mixes. Each configuration runs REPEATS times, alternating
# targets so both see the same machine; the table shows medians.
#
#   scripts/bench-vs-etcd.sh [REPEATS] [SECS]
#
# Needs a release build (cargo build --release) and etcd (apt-get install etcd-server).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
secs=${2:-10}
bin=./target/release/chaos-runner
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 3; }
command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 3; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { # field FILE KEY: a number from bench.json (latency keys are nested)
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); k=sys.argv[2]
v=d["latency_ms"][k] if k.startswith("p") else d[k]; print(v)' "$1" "$2"
}

echo "| mix | concurrency | raft-node ops/s | etcd ops/s | ratio | raft-node p99 ms | etcd p99 ms |"
echo "|---|---|---|---|---|---|---|"
for mix in write=100 write=50,read=50; do
  for c in 1 16 128; do
    for ((r = 1; r <= repeats; r++)); do
      for t in raft-node etcd; do
        $bin bench --target $t --concurrency "$c" --mix "$mix" --duration "$secs" \
          --store "$out/store" --json "$out/$t-$c-$mix-$r.json" >/dev/null 2>"$out/err" ||
          { cat "$out/err" >&2; exit 3; }
      done
    done
    declare -A ops p99
    for t in raft-node etcd; do
      ops[$t]=$(for ((r = 1; r <= repeats; r++)); do field "$out/$t-$c-$mix-$r.json" ok_per_s; done | median)
      p99[$t]=$(for ((r = 1; r <= repeats; r++)); do field "$out/$t-$c-$mix-$r.json" p99; done | median)
    done
    ratio=$(awk -v a="${ops[raft-node]}" -v b="${ops[etcd]}" 'BEGIN {printf "%.2f", a / b}')
    printf '| %s | %d | %.0f | %.0f | %s | %.2f | %.2f |\n' "$mix" "$c" "${ops[raft-node]}" \
      "${ops[etcd]}" "$ratio" "${p99[raft-node]}" "${p99[etcd]}"
  done
done
