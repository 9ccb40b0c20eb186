#!/usr/bin/env bash
# The load test of issue #9: `runbox serve` (native backend) on loopback, driven by
# bench/load: 200 concurrent clients for 60 s sending benign Python, JavaScript and Bash
# with a fork bomb, a memory bomb, an output flood and an infinite loop among them.
# Requests answered 429 are retried after Retry-After. It prints the results by
# program and verdict, the 5xx and lost benign requests (both must be 0), the benign
# latency (p50, p99, retries included) and the server's resident memory over the run.
#
# Usage: bench/serve-load.sh [--clients N] [--duration D] [-- extra runbox serve flags]
# Needs root (the native backend).
set -euo pipefail

clients=200
duration=60s
while (($#)); do
  case $1 in
    --clients) clients=$2; shift ;;
    --duration) duration=$2; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
go=/usr/local/go/bin/go
"$go" build -o "$tmp/runbox" ./cmd/runbox
"$go" build -o "$tmp/load" ./bench/load
addr=127.0.0.1:$((20000 + RANDOM % 20000))
"$tmp/runbox" serve --addr "$addr" "$@" 2>"$tmp/serve.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
printf '## runbox serve under load (%s, %d clients, %s, %d cores)\n\n```\n' "$(date -u +%F)" "$clients" "$duration" "$(nproc)"
status=0
"$tmp/load" -url "http://$addr" -clients "$clients" -duration "$duration" -pid "$pid" || status=$?
printf '```\n'
exit $status
