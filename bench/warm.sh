#!/usr/bin/env bash
# Warm sandboxes (issue #8) beside the tools people use, from one run on this machine:
# print(1) in Python (and console.log(1) in Node) with isolation, one table:
#
#   bare python    /usr/bin/python3 -I -S -c 'print(1)', no isolation
#   bwrap          the same in bubblewrap (every namespace, uid 65534, no capabilities)
#   nsjail         when installed (Debian does not package it)
#   docker run     docker run --rm --network none runbox-sandbox:bookworm (fewer runs)
#   runbox cold    a native box built for the run (Warm: -1)
#   runbox warm    forked from the warm template's zygote
#   JavaScript     console.log(1) cold, and warm back to back and 150–300 ms apart (as
#                  an agent runs code): a warm run takes a JavaScript ready run, node
#                  started and confined ahead of it
#   fork floor     no isolation at all: a Python process that has done what the zygote
#                  does before a run (imports, print(1) compiled, heap frozen) forks a
#                  child per run (libc fork) that runs print(1) and exits; the parent
#                  reaps it. What any process-per-run design costs here at least.
#
# p50 and p99 of single runs one after another, the sequential rate (runs/s = 1000 /
# mean ms), and the rate of 2 clients back to back. The runbox side is the Benchmark*
# functions of sandbox/native/warm_bench_test.go, timing Backend.Run (a language spec:
# the code is a file in the box); the other tools are timed around subprocess.run by an
# inline script run by /usr/bin/python3 -I -S with an empty environment. Rounds are
# interleaved; tables show the median over rounds.
#
# Usage: bench/warm.sh [--quick] [--rounds N]
#   --quick     fewer runs, one round (~1 min)
#   --rounds N  interleaved rounds (default 3, or 1 with --quick)
# Needs root (native backend), bwrap (Debian: bubblewrap); docker run is measured when
# an engine answers and the image exists (scripts/docker-images.sh builds it).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
parse_rounds "$@"
if ((quick)); then
  : "${rounds:=1}"; n=40; docker_n=5; two_n=40
else
  : "${rounds:=3}"; n=200; docker_n=15; two_n=200
fi

cd "$(dirname "$0")/.."
go=/usr/local/go/bin/go
python=/usr/bin/python3
image=runbox-sandbox:bookworm
[[ -x $go && -x $python ]] || { echo "needs $go and $python" >&2; exit 1; }
bwrap=$(command -v bwrap) || { echo "missing bwrap: apt-get install bubblewrap" >&2; exit 1; }
nsjail=${NSJAIL:-$(command -v nsjail || true)}
docker=$(command -v docker || true)
docker_why=
if [[ -z $docker ]]; then docker_why="no docker CLI"
elif ! "$docker" image inspect "$image" >/dev/null 2>&1; then docker_why="no engine, or no $image (scripts/docker-images.sh)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=$tmp/results # lines: round key value
log() { printf '%s\n' "$*" >&2; }

log "building the sandbox/native test binary"
"$go" test -c -o "$tmp/native.test" ./sandbox/native

py_argv=("$python" -I -S -c 'print(1)')
bwrap_box=("$bwrap" --unshare-all --unshare-user --uid 65534 --gid 65534 --cap-drop ALL
  --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/lib /lib
  --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev
  --tmpfs /tmp --chdir /tmp)
nsjail_box=("$nsjail" -Mo --really_quiet --user 65534 --group 65534 -R /usr -R /lib
  -R /lib64 -R /bin -T /tmp -D /tmp --)
docker_box=("$docker" run --rm --network none "$image")
cmdfile() { local name=$1; shift; printf '%s\n' "$@" >"$tmp/$name.argv"; }
cmdfile bare "${py_argv[@]}"
cmdfile bwrap "${bwrap_box[@]}" "${py_argv[@]}"
[[ -n $nsjail ]] && cmdfile nsjail "${nsjail_box[@]}" "${py_argv[@]}"
[[ -z $docker_why ]] && cmdfile docker "${docker_box[@]}" "${py_argv[@]}"

cat >"$tmp/bench.py" <<'PY'
# bench.py ROUND KEY N CLIENTS ARGV_FILE: N runs, by CLIENTS threads back to back.
# Prints "ROUND KEY.STAT VALUE": p50, p99 (ms) and, for 1 client, mean; else rps.
import subprocess, sys, threading, time

round_, key, n, clients, argv_file = sys.argv[1:]
n, clients = int(n), int(clients)
with open(argv_file) as f:
    argv = f.read().split("\n")[:-1]

def run():
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={})
    if r.returncode != 0 or r.stdout != b"1\n":
        sys.exit("bench.py %s: exit %d, stdout %r, stderr %r" % (key, r.returncode, r.stdout, r.stderr[-300:]))
    return (time.perf_counter() - t0) * 1e3

for _ in range(3):
    run()
ts, lock, left = [], threading.Lock(), [n]
def client():
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
        ms = run()
        with lock:
            ts.append(ms)
t0 = time.perf_counter()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
total = time.perf_counter() - t0
ts.sort()
print(round_, key + ".p50", ts[len(ts) // 2])
print(round_, key + ".p99", ts[len(ts) * 99 // 100])
if clients == 1:
    print(round_, key + ".mean", sum(ts) / len(ts))
else:
    print(round_, key + ".rps", n / total)
PY
py() { env -i "$python" -I -S "$tmp/bench.py" "$1" "$2" "$3" "$4" "$tmp/$5.argv" >>"$results"; }

cat >"$tmp/floor.py" <<'PY'
# floor.py N: N runs of fork + print(1) + exit + reap, back to back, by a Python that
# did what the zygote does first. Prints the runs' ms, then the elapsed s.
import ctypes, gc, os, sys, time
import atexit, importlib.machinery, json, threading, types  # what the zygote imports

n = int(sys.argv[1])
libc = ctypes.PyDLL(None, use_errno=True)  # libc's fork, as the zygote forks
code = compile("print(1)\n", "<run>", "exec", dont_inherit=True)
gc.collect()
gc.freeze()
out = os.dup(1)
os.dup2(os.open("/dev/null", os.O_WRONLY), 1)
ts, t0 = [], time.perf_counter()
for _ in range(n):
    s = time.perf_counter()
    pid = libc.fork()
    if pid == 0:
        exec(code, {"__name__": "__main__"})
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    ts.append((time.perf_counter() - s) * 1e3)
os.write(out, (" ".join("%.3f" % t for t in ts) + "\n%.6f\n" % (time.perf_counter() - t0)).encode())
PY
# floor ROUND KEY N PROCS: floor.py by PROCS processes at once, N runs in all.
floor() {
  local i
  for ((i = 0; i < $4; i++)); do env -i "$python" -I -S "$tmp/floor.py" "$(($3 / $4))" >"$tmp/floor-out.$i" & done
  wait
  local el
  el=$(awk 'NR % 2 == 0 && $1 > m { m = $1 } END { print m }' "$tmp"/floor-out.*)
  awk 'NR % 2 == 1' "$tmp"/floor-out.* | tr ' ' '\n' | sort -g | awk -v r="$1" -v k="$2" -v procs="$4" -v el="$el" '
    { t[++n] = $1; sum += $1 }
    END {
      print r, k ".p50", t[int(n / 2) + 1]; print r, k ".p99", t[int(n * 0.99) + 1]
      if (procs == 1) print r, k ".mean", sum / n; else print r, k ".rps", n / el
    }' >>"$results"
  rm -f "$tmp"/floor-out.*
}

# gobench ROUND KEY BENCH N: the test binary's metrics as "ROUND KEY.STAT VALUE".
gobench() {
  local round=$1 key=$2 bench=$3 count=$4
  (cd sandbox/native && env -i "$tmp/native.test" -test.run '^$' -test.bench "^Benchmark$bench\$" \
    -test.benchtime "${count}x" -test.count 1) >"$tmp/go.out" 2>&1 || { cat "$tmp/go.out" >&2; exit 1; }
  awk -v r="$round" -v k="$key" '$1 ~ /^Benchmark/ {
      for (i = 3; i < NF; i += 2) {
        v = $i; u = $(i + 1)
        if (u == "ns/op") print r, k ".mean", v / 1e6
        else if (u == "p50-ms") print r, k ".p50", v
        else if (u == "p99-ms") print r, k ".p99", v
        else if (u == "runs/s") print r, k ".rps", v
        else if (u == "ready-%") print r, k ".ready", v
        else if (u == "ready-cpu-ms") print r, k ".readycpu", v
      }
    }' "$tmp/go.out" >>"$results"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
  log "round $r/$rounds: one client"
  py "$r" bare "$n" 1 bare
  py "$r" bwrap "$n" 1 bwrap
  [[ -n $nsjail ]] && py "$r" nsjail "$n" 1 nsjail
  [[ -z $docker_why ]] && py "$r" docker "$docker_n" 1 docker
  gobench "$r" cold ColdPython "$n"
  gobench "$r" warm WarmPython "$n"
  floor "$r" floor "$n" 1
  gobench "$r" jscold ColdJavaScript "$((n / 4))"
  gobench "$r" jswarm WarmJavaScript "$((n / 4))"
  gobench "$r" jspaced WarmJavaScriptPaced "$((n / 4))"
  log "round $r/$rounds: two clients"
  py "$r" bare2 "$two_n" 2 bare
  py "$r" bwrap2 "$two_n" 2 bwrap
  gobench "$r" cold2 ColdPython2Clients "$two_n"
  gobench "$r" warm2 WarmPython2Clients "$two_n"
  floor "$r" floor2 "$two_n" 2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() {
  awk -v k="$1" '$2 == k { print $3 }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
rate() { local m; m=$(median "$1.mean"); [[ $m == - ]] && echo - || awk -v m="$m" 'BEGIN { printf "%.0f", 1000 / m }'; }
ratio() {
  awk -v a="$1" -v b="$2" '$2 == a { x[$1] = $3 } $2 == b { y[$1] = $3 }
    END { for (r in x) if (r in y) print x[r] / y[r] }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
verdict() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { if (v == "-") { printf "not measured"; exit }
  ok = op == "le" ? v + 0 <= l : v + 0 >= l; printf "%s", ok ? "met" : "MISSED" }'; }

echo "# Warm sandboxes: print(1) beside bare python, bwrap, docker run"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r); $(nproc) CPUs"
echo "- python: $(env -i "$python" -I -S -c 'import sys; print(sys.version.split()[0])'); node: $(/usr/bin/node --version 2>/dev/null || echo none)"
echo "- nsjail: ${nsjail:-not measured (not installed; Debian does not package it)}"
echo "- docker: ${docker_why:-$("$docker" version --format '{{.Server.Version}}')}"
echo "- rounds: $rounds (interleaved; medians over rounds); load average $load_before before, $load_after after; $((SECONDS - start)) s"
echo
echo "| tool | p50 ms | p99 ms | runs/s, 1 client | runs/s, 2 clients | p50 ÷ bare |"
echo "|---|---:|---:|---:|---:|---:|"
row() { # LABEL KEY [KEY2 [norate]]: norate for runs with pauses between them
  local two=- one
  [[ -n ${3-} ]] && two=$(median "$3.rps")
  one=$(rate "$2")
  [[ -n ${4-} ]] && one=-
  echo "| $1 | $(median "$2.p50") | $(median "$2.p99") | $one | $two | $(ratio "$2.p50" bare.p50) |"
}
row "bare /usr/bin/python3 -I -S (no isolation)" bare bare2
row "bwrap, comparable isolation, no limits" bwrap bwrap2
[[ -n $nsjail ]] && row "nsjail -Mo" nsjail
[[ -z $docker_why ]] && row "docker run --rm --network none" docker
row "runbox native cold (box built per run)" cold cold2
row "runbox native warm (forked from the zygote)" warm warm2
row "runbox native cold, JavaScript console.log(1)" jscold
row "runbox native warm, JavaScript console.log(1), back to back" jswarm
row "runbox native warm, JavaScript console.log(1), 150–300 ms apart" jspaced "" norate
row "floor: fork + print(1) + exit + reap in Python, no isolation" floor floor2
echo
echo "runbox times Backend.Run of a language spec (code written to /work/main.py, all"
echo "limits, its own cgroup); the others are timed around Python's subprocess.run."
echo
echo "## Targets (#8)"
echo
p50=$(median warm.p50); p99=$(median warm.p99); rps=$(median warm2.rps); js=$(median jswarm.p50); jsp=$(median jspaced.p50)
echo "warm Python p50 = $p50 ms (target ≤ 2) — $(verdict "$p50" le 2)"
echo "warm Python p99 = $p99 ms (target ≤ 5) — $(verdict "$p99" le 5)"
echo "warm Python, 2 clients = $rps runs/s (target ≥ 400) — $(verdict "$rps" ge 400)"
echo "warm JavaScript p50 = $js ms back to back, $jsp ms 150–300 ms apart (target ≤ 5) — $(verdict "$js" le 5), $(verdict "$jsp" le 5)"
echo "JavaScript ready runs: taken by $(median jswarm.ready)% of the runs back to back, $(median jspaced.ready)% of those apart; making one costs $(median jspaced.readycpu) ms of CPU"
echo "warm ÷ bare python p50 = $(ratio warm.p50 bare.p50) (below 1: an isolated run faster than starting Python)"
echo "warm ÷ cold p50 = $(ratio warm.p50 cold.p50)"
echo "floor (no isolation, process per run): p50 $(median floor.p50) ms, 2 processes $(median floor2.rps) runs/s:"
echo "  the ≤ 2 ms and ≥ 400 runs/s targets are out of reach of any process-per-run design here when the floor misses them"
