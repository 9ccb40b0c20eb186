#!/usr/bin/env bash
# runbox run over a directory of trivial Python scripts, beside the bare interpreter:
#
#   runbox   `runbox run -j 2 DIR` on the native backend (each script in its own box)
#   bare     the same scripts with /usr/bin/python3 -I -S, one after another, ÷ 2:
#            the time two cores need just to start Python that many times
#   docker   one `docker run --rm --network none IMAGE python3 FILE` per script, -P 2
#            (what a naive Docker runner does), when docker and the image exist:
#            $RUNBOX_BENCH_IMAGE, default runbox-sandbox:bookworm (scripts/docker-images.sh)
#   runbox-docker  `runbox run -j 2 --backend docker DIR`, with the same image
#   floors   bench/floor_run.py, two workers: a prepared Python forks a pid 1 into new
#            pid, mount and ipc namespaces per script, which forks the program that
#            runs it (nothing else); and the same with what a box adds that has a
#            kernel cost (a cgroup with limits, tmpfs mounts and /proc, rlimits, uid,
#            seccomp); and that again with one pid 1 per worker serving all its
#            scripts, as runbox's pid 1s do (--reuse). Needs root.
#
# Usage: bench/run.sh [--scripts N] [--rounds N]   (defaults: 200 scripts, 3 rounds)
# Progress goes to stderr, the report (Markdown) to stdout.
set -euo pipefail

n=200
rounds=3
while (($#)); do
  case $1 in
    --scripts) n=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/scripts"
for i in $(seq -w 1 "$n"); do
  echo "print($((10#$i)) * 2)" > "$tmp/scripts/s$i.py"
done
/usr/local/go/bin/go build -o "$tmp/runbox" ./cmd/runbox

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

: > "$tmp/runbox.t"; : > "$tmp/bare.t"; : > "$tmp/docker.t"
docker_image=${RUNBOX_BENCH_IMAGE:-runbox-sandbox:bookworm}
command -v docker > /dev/null && docker image inspect "$docker_image" > /dev/null 2>&1 || docker_image=
: > "$tmp/rbdocker.t"; : > "$tmp/floor.t"; : > "$tmp/floorfull.t"; : > "$tmp/floorreuse.t"
floors=
[[ $(id -u) == 0 ]] && floors=1
for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  t0=$(now)
  "$tmp/runbox" run -j 2 --logs "$tmp/logs" "$tmp/scripts" > "$tmp/out" || { tail -5 "$tmp/out" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$tmp/runbox.t"
  grep -q "^$n scripts: $n ok$" "$tmp/out" || { echo "not all ok:" >&2; tail -3 "$tmp/out" >&2; exit 1; }

  t0=$(now)
  for f in "$tmp"/scripts/*.py; do env -i /usr/bin/python3 -I -S "$f" > /dev/null; done
  t1=$(now)
  echo "($t1 - $t0) / 2" | bc -l >> "$tmp/bare.t"

  if [[ -n $floors ]]; then
    env -i /usr/bin/python3 -I -S bench/floor_run.py "$tmp/scripts" >> "$tmp/floor.t"
    env -i /usr/bin/python3 -I -S bench/floor_run.py --full "$tmp/scripts" >> "$tmp/floorfull.t"
    env -i /usr/bin/python3 -I -S bench/floor_run.py --full --reuse "$tmp/scripts" >> "$tmp/floorreuse.t"
  fi

  if [[ -n $docker_image ]] && command -v docker > /dev/null; then
    t0=$(now)
    (cd "$tmp/scripts" && printf '%s\n' *.py | xargs -P 2 -I{} docker run --rm --network none -v "$tmp/scripts:/s:ro" \
      "$docker_image" python3 /s/{} > /dev/null)
    t1=$(now)
    echo "$t1 - $t0" | bc -l >> "$tmp/docker.t"

    t0=$(now)
    "$tmp/runbox" run -j 2 --backend docker --image "python=$docker_image" --logs "$tmp/logs" "$tmp/scripts" > "$tmp/out" || { tail -5 "$tmp/out" >&2; exit 1; }
    t1=$(now)
    echo "$t1 - $t0" | bc -l >> "$tmp/rbdocker.t"
  fi
done

rb=$(median < "$tmp/runbox.t")
bare=$(median < "$tmp/bare.t")
printf '## runbox run -j 2 over %d trivial Python scripts (%s, median of %d rounds)\n\n' "$n" "$(date -u +%F)" "$rounds"
printf '| tool | seconds | per script ms |\n|---|---:|---:|\n'
printf '| runbox run -j 2 (native) | %.2f | %.1f |\n' "$rb" "$(echo "$rb * 1000 / $n" | bc -l)"
printf '| bare python3 -I -S, serial ÷ 2 | %.2f | %.1f |\n' "$bare" "$(echo "$bare * 1000 / $n" | bc -l)"
if [[ -n $floors ]]; then
  fl=$(median < "$tmp/floor.t")
  ff=$(median < "$tmp/floorfull.t")
  fr=$(median < "$tmp/floorreuse.t")
  printf '| floor: fork into pid+mount+ipc namespaces per script, 2 workers, nothing else | %.2f | %.1f |\n' "$fl" "$(echo "$fl * 1000 / $n" | bc -l)"
  printf '| floor: the same with a cgroup, tmpfs mounts and /proc, rlimits, uid, seccomp | %.2f | %.1f |\n' "$ff" "$(echo "$ff * 1000 / $n" | bc -l)"
  printf '| floor: the same with one pid 1 per worker for all its scripts | %.2f | %.1f |\n' "$fr" "$(echo "$fr * 1000 / $n" | bc -l)"
fi
if [[ -s $tmp/docker.t ]]; then
  dk=$(median < "$tmp/docker.t")
  printf '| docker run per script, -P 2 | %.2f | %.1f |\n' "$dk" "$(echo "$dk * 1000 / $n" | bc -l)"
  rd=$(median < "$tmp/rbdocker.t")
  printf '| runbox run -j 2 --backend docker | %.2f | %.1f |\n' "$rd" "$(echo "$rd * 1000 / $n" | bc -l)"
fi
printf '\nrunbox / bare = %.2f (target ≤ 1.2)\n' "$(echo "$rb / $bare" | bc -l)"
if [[ -n $floors ]]; then
  printf 'floor / bare = %.2f; floor with the kernel work of a box / bare = %.2f; with pid 1 reused = %.2f; runbox / that floor = %.2f\n' \
    "$(echo "$fl / $bare" | bc -l)" "$(echo "$ff / $bare" | bc -l)" "$(echo "$fr / $bare" | bc -l)" "$(echo "$rb / $fr" | bc -l)"
fi
if [[ -s $tmp/docker.t ]]; then
  printf 'docker / runbox = %.1f (target ≥ 20)\n' "$(echo "$dk / $rb" | bc -l)"
  printf 'docker run per script / runbox --backend docker = %.2f\n' "$(echo "$dk / $rd" | bc -l)"
else
  echo "docker: not measured (set RUNBOX_BENCH_IMAGE to an image with python3, and have docker)"
fi
