#!/usr/bin/env bash
# After RUNS runs of `chaos-runner test` with every disk fault (SECS seconds each), of
# which two are SIGKILLed mid-run, nothing may be left: no chaos-lazyfs mount, no
# chaos-lazyfs, fusermount3 or node process, and in the runs that finished no layer
# folder (nN.disk, .nN.trash). Root only (the layer is FUSE). Prints what it ran and what
# it found; exit 1 if anything was left.
#
#   sudo scripts/disk-hygiene.sh [RUNS] [SECS]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
secs=${2:-5}
bin=./target/release/chaos-runner
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 3; }
store=$(mktemp -d)
# The store is kept when something was left, so it can be read.
keep=0
trap '((keep)) || rm -rf "$store"' EXIT
faults=(--nemesis lose-unsynced,disk-full,slow-fsync,corrupt --nemesis-interval 1)
snapshot() {
  {
    grep -F "$store" /proc/self/mountinfo | sed 's/^/mount /'
    grep ' - fuse[^ ]* chaos-lazyfs ' /proc/self/mountinfo | sed 's/^/lazyfs mount /'
    pgrep -af "$store" | grep -v chaos-runner | sed 's/^/process /' || true
  } | sort
}
before=$(snapshot)
codes=()
killed=()
for ((i = 1; i <= runs; i++)); do
  if ((i == 5 || i == 12)); then
    $bin test "${faults[@]}" --time-limit 60 --store "$store" --seed "$i" >/dev/null 2>&1 &
    pid=$!
    sleep 4
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    codes+=("killed")
    killed+=("$i")
  else
    $bin test "${faults[@]}" --time-limit "$secs" --store "$store" --seed "$i" >/dev/null 2>&1
    codes+=("$?")
  fi
done
# What a killed runner's layers leave is gone once their processes are (auto_unmount);
# `chaos-runner clean` would take down any that were not.
sleep 1
$bin clean
after=$(snapshot)
echo "runs: ${codes[*]}"
left=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^$')
# Layer folders in runs that finished (a killed run keeps its data where it was).
folders=""
while IFS= read -r f; do
  [[ -z $f ]] && continue
  run=${f%/nodes/*}
  seed=$(sed -n 's/^ *"seed": \([0-9]*\),$/\1/p' "$run/test.json" | head -1)
  [[ " ${killed[*]} " == *" $seed "* ]] && continue
  folders+="$f"$'\n'
done < <(find "$store" -path '*/nodes/*' \( -name 'n*.disk' -o -name '.n*.trash' \) 2>/dev/null)
folders=${folders%$'\n'}
if [[ -n $left || -n $folders ]]; then
  keep=1
  echo "left behind (the store is kept: $store):"
  [[ -n $left ]] && echo "$left"
  [[ -n $folders ]] && echo "$folders"
  exit 1
fi
echo "nothing left: no chaos-lazyfs mount, no layer or node process, no layer folder in finished runs"
