#!/usr/bin/env bash
# runbox exec on a fast talker: 1 GiB of 100-byte lines, beside cat of the same stream,
# in one run. Prints a Markdown table for docs/benchmarks.md.
#
#   cat | pipe       the stream read and dropped: the ceiling of any reader
#   cat > file       the stream written to a file on DIR
#   --quiet --log    runbox exec writing every line, with time and stream, to DIR
#   live view        runbox exec's plain live view (not a terminal) written to DIR
#
# Usage: bench/exec-throughput.sh [DIR...]   (default: $TMPDIR or /tmp, and /dev/shm)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/runbox" ./cmd/runbox
dirs=("$@")
((${#dirs[@]})) || dirs=("${TMPDIR:-/tmp}" /dev/shm)
size=1073741824
line=$(printf 'x%.0s' $(seq 99))
gen="yes $line | head -c $size"

secs() { /usr/bin/time -o "$tmp/t" -f '%e %M' "$@" && cat "$tmp/t"; }
rate() { awk -v s="$1" -v n="$size" 'BEGIN { printf "%.0f", n / s / 1e6 }'; }

echo "# runbox exec throughput, $(date -u '+%Y-%m-%d %H:%M UTC'), 1 GiB of 100-byte lines"
echo
echo "| where | cat \| pipe | cat > file | runbox --quiet --log | runbox live view to a file | runbox RSS |"
echo "|---|---:|---:|---:|---:|---:|"
for dir in "${dirs[@]}"; do
  work=$(mktemp -d -p "$dir")
  read -r tpipe _ < <(secs sh -c "$gen | cat > /dev/null")
  read -r tfile _ < <(secs sh -c "$gen > '$work/cat.out'")
  rm -f "$work/cat.out"
  read -r tlog rss1 < <(secs "$tmp/runbox" exec --quiet --log "$work/run.log" -- sh -c "$gen")
  rm -f "$work"/run.log*
  read -r tlive rss2 < <(secs sh -c "'$tmp/runbox' exec -- sh -c \"$gen\" 2> '$work/live.out'")
  rm -rf "$work"
  echo "| $dir ($(stat -f -c %T "$dir")) | $(rate "$tpipe") MB/s | $(rate "$tfile") MB/s | $(rate "$tlog") MB/s | $(rate "$tlive") MB/s | $(( (rss1 > rss2 ? rss1 : rss2) / 1024 )) MiB |"
done
