#!/usr/bin/env bash
# The native sandbox beside a bare process, bwrap and (when installed) nsjail, from one
# run on this machine, as Markdown tables for docs/benchmarks.md plus one line per target:
#
#   true      /bin/true in a box with every default limit, warm pool and cold
#   print     /usr/bin/python3 -I -S -c 'print(1)': bare, bwrap, nsjail, runbox
#   parallel  50 runs of print(1) started at once: runs/s and failures
#
# The runbox side is BenchmarkTrue, BenchmarkTrueCold, BenchmarkPythonPrint and
# BenchmarkParallel50 in sandbox/native/bench_test.go, from a test binary built once;
# it times Backend.Run. The other tools are timed around subprocess.run by an inline
# standard-library script run by /usr/bin/python3 -I -S, with an empty environment and
# stdout and stderr captured, as runbox captures them. bwrap gets the isolation it can
# give that is closest to a box: every namespace, uid 65534, no capabilities, a new
# session, a read-only /usr and a tmpfs work directory (but no limits: bwrap has none).
# The measurements are interleaved in rounds and the tables show the median of the
# rounds, because this machine drifts by ±10% over a minute; ratios are the median of
# per-round ratios, which cancels drift shared by both sides of a round.
#
# nsjail is measured when `nsjail` (or $NSJAIL) is executable; Debian does not package
# it, so on a machine without the internet it is reported as not measured.
#
# Usage: bench/sandbox.sh [--quick] [--rounds N]
#   --quick     fewer iterations, one round: a smoke test (~20 s)
#   --rounds N  number of interleaved rounds (default 5, or 1 with --quick)
# Needs root (for the native backend) and bwrap (Debian package bubblewrap).
# Progress goes to stderr, the report to stdout.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
parse_rounds "$@"

# Runs per tool per round, and batches of 50 for the parallel test. A round of the full
# run takes ~20 s, most of it in the cold and the parallel benchmarks.
if ((quick)); then
  : "${rounds:=1}"
  true_n=50
  print_n=50
  batches=1
else
  : "${rounds:=5}"
  true_n=300
  print_n=200
  batches=4
fi
parallel=50 # BenchmarkParallel50's batch

cd "$(dirname "$0")/.."
go=/usr/local/go/bin/go
python=/usr/bin/python3
[[ -x $go ]] || { echo "missing $go" >&2; exit 1; }
[[ -x $python ]] || { echo "missing $python" >&2; exit 1; }
bwrap=$(command -v bwrap) || { echo "missing bwrap: apt-get install bubblewrap" >&2; exit 1; }
nsjail=${NSJAIL:-$(command -v nsjail || true)}
nsjail_why="no nsjail on PATH or in \$NSJAIL; Debian bookworm and sid do not package it, its source is not reachable from this machine"
[[ -z $nsjail || -x $nsjail ]] || { nsjail_why="$nsjail is not executable"; nsjail=; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=$tmp/results # lines: round key value

log() { printf '%s\n' "$*" >&2; }

log "building the sandbox/native test binary"
"$go" test -c -o "$tmp/native.test" ./sandbox/native

# Command lines of the shell-side tools, one argument per line (for bench.py). nsjail's
# mirrors bwrap's; it has not been tried on this machine, which has no nsjail.
py_argv=("$python" -I -S -c 'print(1)')
bwrap_box=("$bwrap" --unshare-all --unshare-user --uid 65534 --gid 65534 --cap-drop ALL
  --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/lib /lib
  --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev
  --tmpfs /tmp --chdir /tmp)
nsjail_box=("$nsjail" -Mo --really_quiet --user 65534 --group 65534 -R /usr -R /lib
  -R /lib64 -R /bin -T /tmp -D /tmp --)
cmdfile() { local name=$1; shift; printf '%s\n' "$@" >"$tmp/$name.argv"; }
cmdfile true.bare /bin/true
cmdfile true.bwrap "${bwrap_box[@]}" /bin/true
cmdfile print.bare "${py_argv[@]}"
cmdfile print.bwrap "${bwrap_box[@]}" "${py_argv[@]}"
[[ -n $nsjail ]] && cmdfile print.nsjail "${nsjail_box[@]}" "${py_argv[@]}"

cat >"$tmp/bench.py" <<'PY'
# Usage: bench.py ROUND seq|par KEY N EXPECT ARGV_FILE. Prints "ROUND KEY.STAT VALUE"
# lines, times in ms. seq runs the command N times one after the other; par runs N
# batches of 50 started at once. A run is ok if it exits 0 with EXPECT on stdout.
import subprocess, sys, threading, time

round_, mode, key, n, expect, argv_file = sys.argv[1:]
n = int(n)
expect = expect.encode()
with open(argv_file) as f:
    argv = f.read().split("\n")[:-1]
PIPE = subprocess.PIPE
BATCH = 50

def out(stat, value):
    print(round_, key + "." + stat, value)

def run():
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=PIPE, stderr=PIPE, env={})
    ms = (time.perf_counter() - t0) * 1e3
    return ms, r.returncode == 0 and r.stdout == expect, r

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]

def seq():
    for _ in range(5):  # warm-up, untimed
        run()
    ts = []
    for _ in range(n):
        ms, ok, r = run()
        if not ok:
            sys.exit("bench.py %s: exit %d, stdout %r, stderr %r" % (key, r.returncode, r.stdout, r.stderr[-500:]))
        ts.append(ms)
    out("p50", median(ts))
    out("mean", sum(ts) / n)

def par():
    run()
    ts, bad, lock = [], [0], threading.Lock()
    def one():
        ms, ok, _ = run()
        with lock:
            if ok:
                ts.append(ms)
            else:
                bad[0] += 1
    total = 0.0
    for _ in range(n):
        threads = [threading.Thread(target=one) for _ in range(BATCH)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total += time.perf_counter() - t0
    out("rps", n * BATCH / total)
    out("p50", median(ts) if ts else 0)
    out("fail", bad[0])

{"seq": seq, "par": par}[mode]()
PY

# py ROUND seq|par KEY N EXPECT CMD runs bench.py on the command line CMD (a cmdfile).
py() { env -i "$python" -I -S "$tmp/bench.py" "$1" "$2" "$3" "$4" "$5" "$tmp/$6.argv" >>"$results"; }

# gobench ROUND BENCH BENCHTIME runs the test binary (in the package directory, as go test
# does) and appends its metrics as "ROUND KEY VALUE", times in ms.
gobench() {
  local round=$1 bench=$2 benchtime=$3
  (cd sandbox/native && env -i "$tmp/native.test" -test.run '^$' -test.bench "$bench" \
    -test.benchtime "$benchtime" -test.count 1) >"$tmp/go.out" 2>&1 ||
    { cat "$tmp/go.out" >&2; exit 1; }
  awk -v r="$round" '
    $1 ~ /^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name)
      if (name == "BenchmarkTrue") k = "true.warm"
      else if (name == "BenchmarkTrueCold") k = "true.cold"
      else if (name == "BenchmarkTrueNamespacesOnly") k = "true.ns"
      else if (name == "BenchmarkTruePrestarted") k = "true.pre"
      else if (name == "BenchmarkPythonPrint") k = "print.runbox"
      else if (name == "BenchmarkWarmPython") k = "print.code"
      else if (name == "BenchmarkParallel50") { k = "par.runbox"; print r, k ".fail", 0 }
      else next
      mean = ""
      for (i = 3; i < NF; i += 2) {
        v = $i; u = $(i + 1)
        if (u == "ns/op" && mean == "") mean = v / 1e6
        else if (u == "mean-ms") mean = v # a benchmark that times only part of an op
        else if (u == "p50-ms") print r, k ".p50", v
        else if (u == "runs/s") print r, k ".rps", v
      }
      print r, k ".mean", mean
    }' "$tmp/go.out" >>"$results"
}

# The load average, printed with the results, shows other work competing for the 2 cores.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
  log "round $r/$rounds: /bin/true (runbox warm, runbox cold, bare, bwrap)"
  gobench "$r" '^BenchmarkTrue$' "${true_n}x"
  gobench "$r" '^BenchmarkTrueCold$' "${true_n}x"
  gobench "$r" '^BenchmarkTrueNamespacesOnly$' "${true_n}x"
  gobench "$r" '^BenchmarkTruePrestarted$' "$((true_n / 3))x"
  py "$r" seq true.bare "$true_n" '' true.bare
  py "$r" seq true.bwrap "$true_n" '' true.bwrap
  log "round $r/$rounds: print(1) (bare, bwrap${nsjail:+, nsjail}, runbox)"
  py "$r" seq print.bare "$print_n" $'1\n' print.bare
  py "$r" seq print.bwrap "$print_n" $'1\n' print.bwrap
  [[ -n $nsjail ]] && py "$r" seq print.nsjail "$print_n" $'1\n' print.nsjail
  gobench "$r" '^BenchmarkPythonPrint$' "${print_n}x"
  gobench "$r" '^BenchmarkWarmPython$' "${print_n}x"
  log "round $r/$rounds: $parallel × print(1) at once (bare, bwrap, runbox)"
  py "$r" par par.bare "$batches" $'1\n' print.bare
  py "$r" par par.bwrap "$batches" $'1\n' print.bwrap
  gobench "$r" '^BenchmarkParallel50$' "${batches}x"
done
log "measured in $((SECONDS - start)) s"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Every key must have one value per round, or a parser has silently missed something.
keys=(true.{warm,cold,bare,bwrap,ns,pre}.{p50,mean} print.{bare,bwrap,runbox,code}.{p50,mean}
  par.{bare,bwrap,runbox}.{rps,p50,fail})
[[ -n $nsjail ]] && keys+=(print.nsjail.{p50,mean})
for k in "${keys[@]}"; do
  got=$(awk -v k="$k" '$2 == k' "$results" | wc -l)
  ((got == rounds)) || { log "expected $rounds values of $k, got $got"; cat "$results" >&2; exit 1; }
done

# median KEY; ratio KEY_A KEY_B: median over rounds of A/B.
median() {
  awk -v k="$1" '$2 == k { print $3 }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.17g\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() {
  awk -v a="$1" -v b="$2" '$2 == a { x[$1] = $3 } $2 == b { y[$1] = $3 }
    END { for (r in x) print x[r] / y[r] }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# per_round KEY_A KEY_B: A/B of each round, in round order.
per_round() {
  awk -v a="$1" -v b="$2" '$2 == a { x[$1] = $3 } $2 == b { y[$1] = $3 }
    END { for (r = 1; r in x; r++) printf "%s%.2f", (r > 1 ? " " : ""), x[r] / y[r] }' "$results"
}
int() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
dec() { awk -v v="$1" -v p="${2:-2}" 'BEGIN { printf "%.*f", p, v }'; }
# verdict VALUE OP LIMIT, OP one of le, lt, ge, eq
verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    ok = op == "le" ? v <= l : op == "lt" ? v < l : op == "ge" ? v >= l : v == l
    printf "%s", ok ? "met" : "MISSED" }'
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mode=full
((quick)) && mode=quick

echo "# runbox native sandbox vs bare, bwrap and nsjail"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- kernel: $(uname -r)"
echo "- go: $("$go" version)"
echo "- python: $(env -i "$python" -I -S -c 'import sys; print(sys.version.split()[0])') ($python -I -S)"
echo "- bwrap: $("$bwrap" --version | awk '{ print $2 }')"
echo "- nsjail: ${nsjail:-not measured ($nsjail_why)}"
echo "- cpu: ${cpu:-unknown} × $(nproc)"
echo "- measured in $((SECONDS - start)) s; load average (1, 5, 15 min): $load_before before, $load_after after"
echo "- run: $mode; interleaved rounds: $rounds, medians shown; empty environment everywhere"
echo

echo "## /bin/true ($true_n runs per tool per round, one at a time)"
echo
echo "| tool | p50 ms | mean ms | ÷ bare | ÷ bwrap |"
echo "|---|---:|---:|---:|---:|"
row() { # LABEL KEY BASE1 BASE2
  echo "| $1 | $(dec "$(median "$2.p50")") | $(dec "$(median "$2.mean")") | $(ratio "$2.p50" "$3.p50") | $(ratio "$2.p50" "$4.p50") |"
}
row "bare (subprocess.run)" true.bare true.bare true.bwrap
row "bwrap, comparable isolation, no limits" true.bwrap true.bare true.bwrap
row "runbox native, all limits, warm (forked from the template)" true.warm true.bare true.bwrap
row "runbox native, all limits, cold (Warm: -1)" true.cold true.bare true.bwrap
row "floor: new namespaces only (os/exec, user+pid+mount+ipc+uts), nothing else" true.ns true.bare true.bwrap
row "floor: a process started ahead told to exec it (1 wake-up, exec, exit, reap)" true.pre true.bare true.bwrap
echo
echo "Ratios are of p50 times (lower is faster). runbox times Backend.Run in its own process;"
echo "the others are timed around Python's subprocess.run, which adds its own spawn cost."
echo

echo "## print(1) in /usr/bin/python3 -I -S ($print_n runs per tool per round, one at a time)"
echo
echo "| tool | p50 ms | mean ms | ÷ bare | ÷ bwrap |"
echo "|---|---:|---:|---:|---:|"
row "bare (subprocess.run)" print.bare print.bare print.bwrap
row "bwrap, comparable isolation, no limits" print.bwrap print.bare print.bwrap
if [[ -n $nsjail ]]; then
  row "nsjail -Mo, comparable isolation" print.nsjail print.bare print.bwrap
fi
row "runbox native, all limits, warm (forked from the template)" print.runbox print.bare print.bwrap
row "runbox native, all limits, warm, as Python code (language spec)" print.code print.bare print.bwrap
[[ -n $nsjail ]] || { echo; echo "nsjail: not measured ($nsjail_why)."; }
echo

echo "## $parallel × print(1) started at once (batches of $parallel per tool per round: $batches)"
echo
echo "| tool | runs/s | p50 ms of a run | failures | × bare |"
echo "|---|---:|---:|---:|---:|"
prow() { # LABEL KEY
  local fails
  fails=$(awk -v k="$2.fail" '$2 == k { s += $3 } END { print s + 0 }' "$results")
  echo "| $1 | $(int "$(median "$2.rps")") | $(dec "$(median "$2.p50")" 1) | $fails | $(ratio "$2.rps" par.bare.rps) |"
}
prow "bare (subprocess.run in 50 threads)" par.bare
prow "bwrap (subprocess.run in 50 threads)" par.bwrap
prow "runbox native, all limits (50 goroutines)" par.runbox
echo
echo "Failures are summed over all rounds; a run that is not ok fails BenchmarkParallel50"
echo "and this script. Ratios are throughput ratios (higher is faster)."
echo

true_warm=$(dec "$(median true.warm.p50)")
true_cold=$(dec "$(median true.cold.p50)")
vs_bare=$(ratio print.runbox.p50 print.bare.p50)
vs_bwrap=$(ratio print.runbox.p50 print.bwrap.p50)
code_bare=$(ratio print.code.p50 print.bare.p50)
code_bwrap=$(ratio print.code.p50 print.bwrap.p50)
par_rps=$(int "$(median par.runbox.rps)")
par_fail=$(awk '$2 == "par.runbox.fail" { s += $3 } END { print s + 0 }' "$results")
echo "## Targets"
echo
echo "runbox /bin/true p50, warm = $true_warm ms (target ≤ 3) — $(verdict "$true_warm" le 3)"
echo "runbox /bin/true p50, cold = $true_cold ms (target ≤ 3) — $(verdict "$true_cold" le 3)"
echo "  floors, no isolation beyond what they name: new namespaces only $(dec "$(median true.ns.p50)") ms (a cold box makes them),"
echo "  a process started ahead told to exec /bin/true $(dec "$(median true.pre.p50)") ms (a warm box's least), bare spawn $(dec "$(median true.bare.p50)") ms"
echo "runbox print(1) / bare, the command line = $vs_bare (target ≤ 1.3) — $(verdict "$vs_bare" le 1.3)"
echo "  (per round: $(per_round print.runbox.p50 print.bare.p50))"
echo "runbox print(1) / bare, as Python code = $code_bare (target ≤ 1.3) — $(verdict "$code_bare" le 1.3)"
echo "runbox print(1) / bwrap, the command line = $vs_bwrap (target < 1) — $(verdict "$vs_bwrap" lt 1)"
echo "  (per round: $(per_round print.runbox.p50 print.bwrap.p50))"
echo "runbox print(1) / bwrap, as Python code = $code_bwrap (target < 1) — $(verdict "$code_bwrap" lt 1)"
echo "runbox $parallel at once: $par_rps runs/s, $par_fail failures (target 0) — $(verdict "$par_fail" eq 0)"
