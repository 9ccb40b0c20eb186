#!/usr/bin/env bash
# runbox map over 2,000 `true` jobs beside xargs -P 2 and GNU parallel, in one run,
# 3 interleaved rounds, median seconds. GNU parallel is used when installed
# (Debian package `parallel`).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/runbox" ./cmd/runbox
n=${N:-2000}
t() { /usr/bin/time -o "$tmp/t" -f %e sh -c "$1" >/dev/null 2>&1; cat "$tmp/t"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A times
tools=(runbox xargs)
command -v parallel >/dev/null && tools+=(parallel)
for round in 1 2 3; do
  times[runbox]+="$(t "seq $n | '$tmp/runbox' map -j 2 true") "
  times[xargs]+="$(t "seq $n | xargs -P 2 -n 1 true") "
  if command -v parallel >/dev/null; then
    times[parallel]+="$(t "seq $n | parallel --will-cite -j 2 true") "
  fi
done
echo "# runbox map: $n × true, -j 2, median of 3 rounds, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| tool | seconds | ÷ xargs |"
echo "|---|---:|---:|"
x=$(tr ' ' '\n' <<<"${times[xargs]}" | grep . | median)
for tool in "${tools[@]}"; do
  s=$(tr ' ' '\n' <<<"${times[$tool]}" | grep . | median)
  echo "| $tool | $s | $(awk -v a="$s" -v b="$x" 'BEGIN { printf "%.2f", a / b }') |"
done
