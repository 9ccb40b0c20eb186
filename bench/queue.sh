#!/usr/bin/env bash
# The submissions queue (POST /v1/submissions, the embedded JetStream, an in-process
# worker, the watch to the result) against direct runs (POST /v1/runs) on the same
# server and backend: the latency of one run at a time (p50, p99, alternating the two
# paths), and the throughput of a burst of 400 runs at the same concurrency (the CPUs).
# The benchmarks are internal/server/submissions_bench_test.go.
#
#   bench/queue.sh                     # native, host, and noop (runs nothing: the paths alone)
#   BACKENDS=host RUNS=500 BURSTS=5 bench/queue.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
runs=${RUNS:-200}
bursts=${BURSTS:-3}
for backend in ${BACKENDS:-native host noop}; do
  echo "== backend $backend: $runs runs one at a time, each way"
  RUNBOX_BENCH_BACKEND=$backend go test ./internal/server -run '^$' -bench '^BenchmarkQueueOverhead$' \
    -benchtime "${runs}x" -count 1 | grep -E '^Benchmark' | tr -s '\t ' ' ' |
    sed -E 's/ ([0-9.]+) ([a-z0-9/-]+)/\n  \2 \1/g' | grep -E '^  [a-z]'
  echo "== backend $backend: $bursts bursts of 400 runs, each way (median)"
  RUNBOX_BENCH_BACKEND=$backend go test ./internal/server -run '^$' -bench '^BenchmarkQueueThroughput$' \
    -benchtime "${bursts}x" -count 1 -timeout 30m | grep -E '^Benchmark' | tr -s '\t ' ' ' |
    sed -E 's/ ([0-9.]+) ([a-z0-9/-]+)/\n  \2 \1/g' | grep -E '^  [a-z]'
done
