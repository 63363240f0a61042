#!/usr/bin/env bash
# Renders a run's report.html in headless Chromium to a PNG, as a person would see it.
#
#   scripts/screenshot-report.sh RUN_DIR [OUT.png] [WIDTH,HEIGHT]
#
# Installs Debian's chromium if it is missing (needs root and the package mirror).
set -euo pipefail
run=${1:?usage: scripts/screenshot-report.sh RUN_DIR [OUT.png] [WIDTH,HEIGHT]}
out=${2:-$run/report.png}
size=${3:-1400,1700}
[[ -f $run/report.html ]] || { echo "no report.html in $run (chaos-runner report $run builds it)" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  echo "installing chromium..." >&2
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
  --virtual-time-budget=3000 --screenshot="$(realpath -m "$out")" \
  "file://$(realpath "$run")/report.html" >/dev/null 2>&1
echo "$out"
