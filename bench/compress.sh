#!/usr/bin/env bash
# gzip -6 of ~200 MB of generated logs (FILES × MB, default 20 × 10), 2 at a time:
# examples/compress beside pigz -p 2 and a Python multiprocessing.Pool(2), in one run,
# 3 interleaved rounds, median seconds. Outputs are removed between runs; inputs stay
# in the page cache. Installs the Debian package `pigz` when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${FILES:-20}
mb=${MB:-10}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/data"

if ! command -v pigz >/dev/null; then
  apt-get install -y pigz >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y pigz >/dev/null; }
fi
go build -o "$tmp/compress" ./examples/compress

# Varied lines (timestamps, levels, ids, latencies), one seed per file, so the
# compressor sees log-like entropy rather than one repeated line.
/usr/bin/python3 -I - "$tmp/data" "$files" "$mb" <<'EOF'
import random, sys
from datetime import datetime, timedelta
out, files, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
levels = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
msgs = ["request served", "cache miss", "retrying upstream", "user login",
        "slow query", "connection reset", "token refreshed", "job queued"]
for i in range(files):
    rng = random.Random(i)
    t = datetime(2025, 1, 1)
    size, lines = 0, []
    while size < mb << 20:
        t += timedelta(milliseconds=rng.randrange(5000))
        line = (f"{t.isoformat(timespec='milliseconds')}Z {rng.choice(levels):<5} "
                f"req={rng.getrandbits(64):016x} user={rng.randrange(10000)} "
                f"path=/api/v1/items/{rng.randrange(1000000)} dur={rng.randrange(2000)}ms "
                f"{rng.choice(msgs)}\n")
        lines.append(line)
        size += len(line)
    with open(f"{out}/app-{i:02d}.log", "w") as f:
        f.writelines(lines)
EOF
cat >"$tmp/pool.py" <<'EOF'
import glob, gzip, shutil, sys
from multiprocessing import Pool
def compress_file(path):
    with open(path, "rb") as src, gzip.open(path + ".gz", "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 256 << 10)
if __name__ == "__main__":
    with Pool(2) as pool:
        pool.map(compress_file, sorted(glob.glob(sys.argv[1] + "/*.log")))
EOF
bytes=$(cat "$tmp"/data/*.log | wc -c)

t() {
  rm -f "$tmp"/data/*.gz
  /usr/bin/time -o "$tmp/t" -f %e sh -c "$1" >/dev/null 2>&1 || { echo "failed: $1" >&2; exit 1; }
  cat "$tmp/t"
  cat "$tmp"/data/*.gz | wc -c >"$tmp/out"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A times out
tools=("examples/compress -j 2 -level 6" "pigz -p 2 -6 -k" "python Pool(2) gzip.open(6)")
cmds=("'$tmp/compress' -j 2 -level 6 '$tmp/data'" "pigz -p 2 -6 -k '$tmp'/data/*.log"
  "/usr/bin/python3 -I '$tmp/pool.py' '$tmp/data'")
for round in 1 2 3; do
  for i in "${!tools[@]}"; do
    times[${tools[$i]}]+="$(t "${cmds[$i]}") "
    out[${tools[$i]}]=$(<"$tmp/out")
  done
done

echo "# gzip -6, $files files, $bytes bytes, 2 at a time, median of 3 rounds, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| tool | seconds | MB/s | throughput ÷ pigz | output % of input |"
echo "|---|---:|---:|---:|---:|"
p=$(median <<<"${times[${tools[1]}]}")
for tool in "${tools[@]}"; do
  s=$(median <<<"${times[$tool]}")
  awk -v tool="$tool" -v s="$s" -v p="$p" -v b="$bytes" -v o="${out[$tool]}" \
    'BEGIN { printf "| %s | %.2f | %.1f | %.2f | %.1f |\n", tool, s, b / 1e6 / s, p / s, 100 * o / b }'
done
