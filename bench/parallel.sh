#!/usr/bin/env bash
# Every target of issue #4 (parallel work), measured in one run, one line each:
#
#   pool round trip   Go echo worker, one task at a time: p50 (≤ 50 µs), beside the same
#                     worker driven over raw pipes without the pool
#   pool throughput   2 workers, 8 submitters (≥ 20,000 tasks/s), beside 2 workers driven
#                     over raw pipes (medians of 3 runs each)
#   python pool       Python workers through the pool vs one python3 per task (≥ 20×)
#   runbox map        2,000 × true, -j 2, vs xargs -P 2 (≤ 1.2×) and GNU parallel (faster)
#   compress          examples/compress vs pigz -p 2 (≥ 0.8×) and Python Pool(2) + gzip
#
# The Go numbers come from the pool package's benchmarks (built once); map and compress
# from bench/map.sh and bench/compress.sh, whose tables are printed too.
# Usage: bench/parallel.sh      Progress goes to stderr, the report to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/local/go/bin/go test -c -o "$tmp/pool.test" ./pool

# metric BENCH UNIT < benchmark output: the median over the runs of BENCH of the value
# before UNIT.
metric() {
  awk -v b="$1" -v u="$2" '$1 ~ "^"b"-[0-9]+$" { for (i = 2; i <= NF; i++) if ($i == u) print $(i-1) }' |
    sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }

# Each pool benchmark and its raw-pipe floor run in turn, 3 times: medians of 3.
echo "pool benchmarks…" >&2
( cd pool && "$tmp/pool.test" -test.run '^$' -test.bench 'BenchmarkRoundTrip|BenchmarkThroughput' \
  -test.benchtime 20000x -test.count 3 ) > "$tmp/pool.out"
p50=$(metric BenchmarkRoundTrip p50-µs < "$tmp/pool.out")
floor=$(metric BenchmarkRoundTripPipe p50-µs < "$tmp/pool.out")
tps=$(metric BenchmarkThroughput tasks/s < "$tmp/pool.out")
tfloor=$(metric BenchmarkThroughputPipe tasks/s < "$tmp/pool.out")
( cd pool && "$tmp/pool.test" -test.run '^$' -test.bench 'BenchmarkPythonPoolVsProcessPerTask' \
  -test.benchtime 3s ) > "$tmp/py.out"
echo "map…" >&2
bench/map.sh > "$tmp/map.md"
echo "compress…" >&2
bench/compress.sh > "$tmp/compress.md"

cat "$tmp/map.md"; echo; cat "$tmp/compress.md"; echo
echo "## Targets of #4, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "pool round trip p50 = ${p50} µs (target ≤ 50) — $(verdict "$p50 <= 50"); the same worker over raw pipes, no pool: ${floor} µs"
echo "pool throughput = ${tps} tasks/s (target ≥ 20000) — $(verdict "$tps >= 20000"); two workers over raw pipes, no pool: ${tfloor} tasks/s"
pyp=$(metric BenchmarkPythonPoolVsProcessPerTask/pool tasks/s < "$tmp/py.out")
pys=$(metric BenchmarkPythonPoolVsProcessPerTask/process_per_task tasks/s < "$tmp/py.out")
pyr=$(awk -v a="$pyp" -v b="$pys" 'BEGIN { printf "%.0f", a / b }')
echo "python pool ${pyp} tasks/s ÷ process per task ${pys} tasks/s = ${pyr}× (target ≥ 20) — $(verdict "$pyr >= 20")"
ratio() { awk -v t="$1" -F'|' '$2 ~ " "t" " { gsub(/ /, "", $4); print $4 }' "$2"; }
m=$(ratio runbox "$tmp/map.md"); par=$(ratio parallel "$tmp/map.md")
echo "runbox map ÷ xargs -P 2 = $m (target ≤ 1.2) — $(verdict "$m <= 1.2")"
[[ -n $par ]] && echo "GNU parallel ÷ xargs = $par; runbox faster — $(verdict "$m < $par")"
c=$(awk -F'|' '$2 ~ "compress" { gsub(/ /, "", $5); print $5; exit }' "$tmp/compress.md")
py=$(awk -F'|' '$2 ~ "python" { gsub(/ /, "", $5); print $5; exit }' "$tmp/compress.md")
echo "compress throughput ÷ pigz = $c (target ≥ 0.8) — $(verdict "$c >= 0.8"); Python Pool ÷ pigz = $py"
