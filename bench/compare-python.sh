#!/usr/bin/env bash
# Side-by-side numbers for Go's os/exec, runbox's proc and Python's subprocess, from one
# run on this machine, as Markdown tables for docs/benchmarks.md plus one line per target:
#
#   spawn    start and wait for /bin/true, capturing stdout and stderr
#   capture  read 1 GiB from `dd if=/dev/zero bs=1M count=1024` (BenchmarkCapture's child)
#
# The Go side is BenchmarkSpawn and BenchmarkCapture in proc/bench_test.go, from a test
# binary built once; the Python side is an inline standard-library script run by
# /usr/bin/python3 -I -S. Both run with an empty environment, so every child gets the same
# (empty) environment. The measurements are interleaved in rounds and the tables show the
# median of the rounds, because this machine drifts by ±10% over a minute; ratios are the
# median of per-round ratios, which cancels drift shared by both sides of a round.
#
# Usage: bench/compare-python.sh [--quick] [--rounds N]
#   --quick     fewer iterations, one round: a smoke test (~20 s)
#   --rounds N  number of interleaved rounds (default 5, or 1 with --quick)
# Progress goes to stderr, the report to stdout.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
parse_rounds "$@"

# Iterations per round. osexec_buffer costs 6–13 s per iteration (it grows a 1 GiB
# bytes.Buffer), so it and subprocess.run, its Python counterpart, run once per round.
if ((quick)); then
  : "${rounds:=1}"
  spawn_n=300      # /bin/true per tool
  cap_slow_n=1     # os/exec into bytes.Buffer, Python subprocess.run
  cap_fast_n=2     # proc, Python bounded streaming read
else
  : "${rounds:=5}"
  spawn_n=2000
  cap_slow_n=1
  cap_fast_n=5
fi

cd "$(dirname "$0")/.."
go=/usr/local/go/bin/go
python=/usr/bin/python3
[[ -x $go ]] || { echo "missing $go" >&2; exit 1; }
[[ -x $python ]] || { echo "missing $python" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=$tmp/results # lines: round key value

log() { printf '%s\n' "$*" >&2; }

log "building the proc test binary"
"$go" test -c -o "$tmp/proc.test" ./proc

cat >"$tmp/bench.py" <<'PY'
# Usage: bench.py ROUND MODE N. Prints "ROUND KEY VALUE" lines.
import collections, resource, subprocess, sys, time

round_, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
DD = ["/bin/dd", "if=/dev/zero", "bs=1M", "count=1024", "status=none"]
SIZE = 1 << 30
KEEP = 10 << 20  # proc.DefaultCaptureLimit
CHUNK = 1 << 20
PIPE = subprocess.PIPE

def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

def out(key, value):
    print(round_, key, value)

def check(cond, *what):
    if not cond:
        sys.exit("bench.py %s: %r" % (mode, what))

def spawn():
    for _ in range(10):  # warm-up, untimed
        subprocess.run(["/bin/true"], stdout=PIPE, stderr=PIPE)
    base = maxrss()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r = subprocess.run(["/bin/true"], stdout=PIPE, stderr=PIPE)
        ts.append(time.perf_counter_ns() - t0)
        check(r.returncode == 0, r.returncode)
    ts.sort()
    out("spawn.python.ns", sum(ts) / n)
    out("spawn.python.p50", ts[n // 2])
    out("spawn.python.mem", maxrss() - base)

def capture_run():
    base = maxrss()
    total = 0
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r = subprocess.run(DD, stdout=PIPE)
        total += time.perf_counter_ns() - t0
        check(r.returncode == 0 and len(r.stdout) == SIZE, r.returncode, len(r.stdout))
        del r
    out("cap.pyrun.gibs", n * 1e9 / total)  # 1 GiB per op
    out("cap.pyrun.mem", maxrss() - base)

def capture_stream():
    base = maxrss()
    total = 0
    for _ in range(n):
        t0 = time.perf_counter_ns()
        p = subprocess.Popen(DD, stdout=PIPE)
        chunks, kept, seen = collections.deque(), 0, 0
        while True:
            b = p.stdout.read(CHUNK)
            if not b:
                break
            seen += len(b)
            chunks.append(b)
            kept += len(b)
            while kept - len(chunks[0]) >= KEEP:
                kept -= len(chunks.popleft())
        p.stdout.close()
        rc = p.wait()
        tail = b"".join(chunks)[-KEEP:]
        total += time.perf_counter_ns() - t0
        check(rc == 0 and seen == SIZE and len(tail) == KEEP, rc, seen, len(tail))
        del chunks, tail
    out("cap.pystream.gibs", n * 1e9 / total)
    out("cap.pystream.mem", maxrss() - base)

{"spawn": spawn, "run": capture_run, "stream": capture_stream}[mode]()
PY

py() { env -i "$python" -I -S "$tmp/bench.py" "$@" >>"$results"; }

# gobench ROUND BENCH BENCHTIME runs the test binary (in the package directory, as go test
# does) and appends its metrics as "ROUND KEY VALUE", capture throughput in GiB/s.
gobench() {
  local round=$1 bench=$2 benchtime=$3
  (cd proc && env -i "$tmp/proc.test" -test.run '^$' -test.bench "$bench" \
    -test.benchtime "$benchtime" -test.count 1) >"$tmp/go.out" ||
    { cat "$tmp/go.out" >&2; exit 1; }
  awk -v r="$round" '
    $1 ~ /^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name)
      if (name == "BenchmarkSpawn/osexec") k = "spawn.osexec"
      else if (name == "BenchmarkSpawn/proc") k = "spawn.proc"
      else if (name == "BenchmarkSpawn/proc_process_group") k = "spawn.pgrp"
      else if (name == "BenchmarkCapture/osexec_buffer") k = "cap.osexec"
      else if (name == "BenchmarkCapture/proc") k = "cap.proc"
      else next
      for (i = 3; i < NF; i += 2) {
        v = $i; u = $(i + 1)
        if (u == "ns/op") print r, k ".ns", v
        else if (u == "B/op") print r, k ".bop", v
        else if (u == "allocs/op") print r, k ".allocs", v
        else if (u == "MB/s") print r, k ".gibs", v * 1e6 / 2^30
        else if (u == "peak-heap-B") print r, k ".mem", v
        else if (u == "peak/cap") print r, k ".peakcap", v
      }
    }' "$tmp/go.out" >>"$results"
}

# The load average, printed with the results, shows other work competing for the 2 cores.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
  log "round $r/$rounds: go spawn"
  gobench "$r" 'BenchmarkSpawn$' "${spawn_n}x"
  log "round $r/$rounds: python spawn"
  py "$r" spawn "$spawn_n"
  log "round $r/$rounds: go capture"
  gobench "$r" 'BenchmarkCapture$/^osexec_buffer$' "${cap_slow_n}x"
  gobench "$r" 'BenchmarkCapture$/^proc$' "${cap_fast_n}x"
  log "round $r/$rounds: python capture"
  py "$r" run "$cap_slow_n"
  py "$r" stream "$cap_fast_n"
done
log "measured in $((SECONDS - start)) s"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Every key must have one value per round, or a parser has silently missed something.
for k in spawn.{osexec,proc,pgrp}.{ns,bop,allocs} spawn.python.{ns,p50,mem} \
  cap.{osexec,proc}.{gibs,mem} cap.proc.peakcap cap.{pyrun,pystream}.{gibs,mem}; do
  got=$(awk -v k="$k" '$2 == k' "$results" | wc -l)
  ((got == rounds)) || { log "expected $rounds values of $k, got $got"; cat "$results" >&2; exit 1; }
done

# median KEY; ratio KEY_A KEY_B: median over rounds of A/B; highest KEY.
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
highest() { awk -v k="$1" '$2 == k { print $3 }' "$results" | sort -g | tail -n 1; }
bytes() {
  awk -v b="$1" 'BEGIN {
    if (b < 0) b = 0
    if (b >= 2^30) printf "%.2f GiB", b / 2^30
    else if (b >= 2^20) printf "%.1f MiB", b / 2^20
    else if (b >= 2^10) printf "%.0f KiB", b / 2^10
    else printf "%d B", b }'
}
int() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
dec() { awk -v v="$1" -v p="${2:-2}" 'BEGIN { printf "%.*f", p, v }'; }
# verdict VALUE OP LIMIT
verdict() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = op == "le" ? v <= l : v >= l; printf "%s", ok ? "met" : "MISSED" }'; }

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mode=full
((quick)) && mode=quick

echo "# os/exec vs runbox proc vs Python subprocess"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- kernel: $(uname -r)"
echo "- go: $("$go" version)"
echo "- python: $(env -i "$python" -I -S -c 'import sys; print(sys.version.split()[0])') ($python -I -S)"
echo "- cpu: ${cpu:-unknown} × $(nproc)"
echo "- measured in $((SECONDS - start)) s; load average (1, 5, 15 min): $load_before before, $load_after after"
echo "- run: $mode; interleaved rounds: $rounds, medians shown; empty environment for Go and Python"
echo

echo "## Spawn /bin/true, capturing stdout and stderr ($spawn_n per tool per round)"
echo
echo "| tool | ns/op | memory | ÷ os/exec | ÷ Python |"
echo "|---|---:|---|---:|---:|"
row_spawn() { # LABEL KEY MEMORY
  echo "| $1 | $(int "$(median "spawn.$2.ns")") | $3 | $(ratio "spawn.$2.ns" spawn.osexec.ns) | $(ratio "spawn.$2.ns" spawn.python.ns) |"
}
go_mem() { echo "$(int "$(median "spawn.$1.bop")") B/op, $(int "$(median "spawn.$1.allocs")") allocs/op"; }
row_spawn "Go os/exec, bytes.Buffer" osexec "$(go_mem osexec)"
row_spawn "runbox proc.Run" proc "$(go_mem proc)"
row_spawn "runbox proc, process group" pgrp "$(go_mem pgrp)"
row_spawn "Python subprocess.run" python "peak RSS +$(bytes "$(median spawn.python.mem)")"
echo
echo "ns/op is the mean; Python p50 $(int "$(median spawn.python.p50)") ns. Ratios are time ratios (lower is faster)."
echo

echo "## Capture 1 GiB from dd (bs=1M)"
echo
echo "| tool | GiB/s | memory | × os/exec | × Python run | × Python stream |"
echo "|---|---:|---|---:|---:|---:|"
row_cap() { # LABEL KEY MEMORY
  echo "| $1 | $(dec "$(median "cap.$2.gibs")") | $3 | $(ratio "cap.$2.gibs" cap.osexec.gibs) | $(ratio "cap.$2.gibs" cap.pyrun.gibs) | $(ratio "cap.$2.gibs" cap.pystream.gibs) |"
}
row_cap "Go os/exec, bytes.Buffer" osexec "peak heap $(bytes "$(median cap.osexec.mem)")"
row_cap "runbox proc.Run, 10 MiB bounded capture" proc \
  "peak heap $(bytes "$(median cap.proc.mem)") ($(dec "$(median cap.proc.peakcap)") × cap)"
row_cap "Python subprocess.run(stdout=PIPE)" pyrun "peak RSS +$(bytes "$(median cap.pyrun.mem)")"
row_cap "Python Popen + read(1 MiB), last 10 MiB kept" pystream "peak RSS +$(bytes "$(median cap.pystream.mem)")"
echo
echo "Iterations per round: os/exec and subprocess.run $cap_slow_n, proc and Python streaming $cap_fast_n."
echo "Ratios are throughput ratios (higher is faster). Go memory is the heap growth at its peak"
echo "(runtime.MemStats, sampled every 1 ms); Python memory is the growth of ru_maxrss."
echo

spawn_ratio=$(ratio spawn.proc.ns spawn.osexec.ns)
cap_gibs=$(dec "$(median cap.proc.gibs)")
peak=$(dec "$(highest cap.proc.peakcap)")
echo "## Targets"
echo
echo "proc spawn / os/exec = $spawn_ratio (target ≤ 1.05) — $(verdict "$spawn_ratio" le 1.05)"
echo "  (per round: $(per_round spawn.proc.ns spawn.osexec.ns))"
echo "proc capture = $cap_gibs GiB/s (target ≥ 1.5) — $(verdict "$cap_gibs" ge 1.5)"
echo "proc capture peak heap = $peak × cap (target ≤ 2) — $(verdict "$peak" le 2) (highest round)"
