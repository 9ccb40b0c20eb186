#!/usr/bin/env bash
# The Docker backend beside the docker CLI, from one run on this machine, as a Markdown
# table for docs/benchmarks.md plus one line per target (issue #7):
#
#   cold   `true` in a new container per run  vs  docker run --rm --network none IMAGE true
#          target: ratio <= 1.05
#   warm   `true` in a warm container (p50)   vs  the same docker run
#          target: ratio <= 0.4
#   print  print(1) by python3 in a warm container, for reference
#
# All sides are Go benchmarks in sandbox/docker/bench_test.go, from one test binary:
# BenchmarkDockerRunCLI execs the docker CLI on PATH, the others time Backend.Run. They
# are interleaved in rounds; the table shows the median of the rounds' p50s and the
# ratios are the median of per-round ratios, which cancels drift shared by a round.
#
# Usage: bench/docker.sh [--quick] [--rounds N]
#   --quick     5 runs per benchmark, one round: a smoke test (~15 s)
#   --rounds N  interleaved rounds (default 3; 20 runs per benchmark per round)
# Needs a running engine and the image scripts/docker-images.sh builds.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
parse_rounds "$@"
if ((quick)); then
  : "${rounds:=1}"; n=5
else
  : "${rounds:=3}"; n=20
fi

cd "$(dirname "$0")/.."
go=/usr/local/go/bin/go
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "building the sandbox/docker test binary" >&2
"$go" test -c -o "$tmp/docker.test" ./sandbox/docker

benches=(DockerRunCLI TrueCold TrueWarm PythonPrintWarm)
for ((r = 1; r <= rounds; r++)); do
  for b in "${benches[@]}"; do
    echo "round $r/$rounds: $b" >&2
    out=$("$tmp/docker.test" -test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime "${n}x" 2>&1) || {
      echo "$out" >&2; exit 1; }
    p50=$(awk '$1 ~ /^Benchmark/ { for (i = 1; i < NF; i++) if ($(i+1) == "p50-ms") print $i }' <<<"$out")
    [[ -n $p50 ]] || { echo "$out" >&2; echo "no p50 from $b" >&2; exit 1; }
    echo "$r $b $p50" >>"$tmp/results"
  done
done

awk -v rounds="$rounds" -v n="$n" -v cli="$(docker version -f '{{.Client.Version}}' 2>/dev/null || echo ?)" \
  -v engine="$(docker version -f '{{.Server.Version}}' 2>/dev/null || echo ?)" '
function median(a, k,   i, j, t) {
  for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
  return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
}
{ v[$2, $1] = $3 }
END {
  split("DockerRunCLI TrueCold TrueWarm PythonPrintWarm", names, " ")
  label["DockerRunCLI"] = "docker run --rm --network none IMAGE true (CLI " cli ")"
  label["TrueCold"] = "runbox docker backend, cold: true"
  label["TrueWarm"] = "runbox docker backend, warm: true"
  label["PythonPrintWarm"] = "runbox docker backend, warm: print(1)"
  printf "Engine %s; %d round(s) of %d runs each; p50 per round, median of rounds.\n\n", engine, rounds, n
  print "| what | p50 ms | ratio to docker run |"
  print "|---|---:|---:|"
  for (i = 1; i <= 4; i++) {
    b = names[i]
    for (r = 1; r <= rounds; r++) { p[r] = v[b, r]; q[r] = v[b, r] / v["DockerRunCLI", r] }
    ratio[b] = median(q, rounds)
    printf "| %s | %.1f | %.2f |\n", label[b], median(p, rounds), ratio[b]
  }
  printf "\ncold: %.2fx docker run (target <= 1.05) %s\n", ratio["TrueCold"], ratio["TrueCold"] <= 1.05 ? "MET" : "MISSED"
  printf "warm: %.2fx docker run (target <= 0.40) %s\n", ratio["TrueWarm"], ratio["TrueWarm"] <= 0.40 ? "MET" : "MISSED"
}' "$tmp/results"
