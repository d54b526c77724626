#!/usr/bin/env bash
# How a collection's costs grow with its size, with its vectors in memory and on disk, and
# on disk in a process whose memory is capped below the raw vectors (a cgroup v1 memory
# controller; needs root). For each size (default 100000 1000000; add 5000000 for the issue's
# target) on 128-d synthetic clustered data (low-rank, like text embeddings):
#   build: upsert time (1M-point batches, then one compaction) and index build time (release
#   `quiver`, 2 threads);
#   disk bytes of the collection folder;
#   `quiver bench collection` in memory (exact truth computed there), on disk, and on disk
#   inside a cgroup capped at CAP_RATIO x the raw vector bytes (0.8 by default: 5M x 128 is
#   2.56 GB raw and the issue's cap is 2 GiB).
# Writes one JSON line per run to bench/results/on-disk.jsonl and the table and plot through
# bench/on_disk_report.py. Usage: bash bench/on_disk.sh [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-100000 1000000}")
read -r -a SIZES <<< "${SIZES[*]}"
CAP_RATIO="${CAP_RATIO:-0.8}"
DIM="${DIM:-128}"
WORK="${WORK:-/tmp/quiver-on-disk-bench}"
OUT="${OUT:-bench/results/on-disk.jsonl}"
cargo build --release -p quiver-cli --locked
Q="$PWD/target/release/quiver"
bash bench/setup.sh > /dev/null
PY=bench/.venv/bin/python
mkdir -p "$WORK" bench/results
[ "${APPEND:-0}" = 1 ] || : > "$OUT"
CPU=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')

for N in "${SIZES[@]}"; do
  D="$WORK/n$N"
  rm -rf "$D"
  mkdir -p "$D"
  echo "== $N x $DIM: data"
  $PY - "$D" "$N" "$DIM" << 'EOF'
import sys, numpy as np
d, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
basis = rng.standard_normal((24, dim)).astype(np.float32)
def rows(m, seed):
    r = np.random.default_rng(seed)
    z = r.standard_normal((m, 24)).astype(np.float32)
    return z @ basis + 0.05 * r.standard_normal((m, dim)).astype(np.float32)
# Written in chunks into one .npy so that 5M rows never need two copies in memory.
out = np.lib.format.open_memmap(f"{d}/base.npy", mode="w+", dtype=np.float32, shape=(n, dim))
for s in range(0, n, 500_000):
    out[s:s + 500_000] = rows(min(500_000, n - s), 1000 + s)
out.flush()
np.save(f"{d}/queries.npy", rows(1000, 99))
EOF
  DATA="$D/data"
  "$Q" --data-dir "$DATA" create c --dim $DIM --metric cosine > /dev/null
  t0=$(date +%s.%N)
  # In batches of at most 1M points (one upsert is one atomic batch, at most 2^21 points),
  # then one compaction: the collection's rows become one sorted segment read in place.
  $PY - "$D" "$N" << 'EOF2'
import sys, numpy as np
d, n = sys.argv[1], int(sys.argv[2])
base = np.load(f"{d}/base.npy", mmap_mode="r")
for i, s in enumerate(range(0, n, 1_000_000)):
    np.save(f"{d}/part{i:03d}.npy", np.ascontiguousarray(base[s:s + 1_000_000]))
EOF2
  start=0
  for part in "$D"/part*.npy; do
    "$Q" --data-dir "$DATA" upsert c --file "$part" --start-id "$start" > /dev/null
    rm "$part"
    start=$((start + 1000000))
  done
  "$Q" --data-dir "$DATA" compact c > /dev/null
  t1=$(date +%s.%N)
  "$Q" --data-dir "$DATA" build-index c > /dev/null
  t2=$(date +%s.%N)
  rm "$D/base.npy"
  disk=$(du -sb "$DATA/collections/c" | cut -f1)
  echo "{\"bench\": \"build\", \"points\": $N, \"dim\": $DIM, \"cpu\": \"$CPU\", \"upsert_s\": $($PY -c "print($t1 - $t0)"), \"build_s\": $($PY -c "print($t2 - $t1)"), \"disk_bytes\": $disk}" | tee -a "$OUT"

  echo "== $N: in memory"
  "$Q" --data-dir "$DATA" bench collection c --queries "$D/queries.npy" --save-truth "$D/truth.npy" \
    | sed "s/^{/{\"mode\": \"memory\", \"cpu\": \"$CPU\", /" | tee -a "$OUT"
  "$Q" --data-dir "$DATA" configure c --on-disk true > /dev/null
  echo "== $N: on disk"
  "$Q" --data-dir "$DATA" bench collection c --queries "$D/queries.npy" --truth "$D/truth.npy" \
    | sed "s/^{/{\"mode\": \"disk\", \"cpu\": \"$CPU\", /" | tee -a "$OUT" > "$D/disk.json"

  echo "== $N: snapshot create and restore (vectors on disk)"
  t0=$(date +%s.%N)
  snap=$("$Q" --json --data-dir "$DATA" snapshot create c | $PY -c "import json, sys; print(json.load(sys.stdin)['name'])")
  t1=$(date +%s.%N)
  file="$DATA/snapshots/c/$snap"
  size=$(stat -c %s "$file")
  "$Q" --data-dir "$DATA" snapshot restore c2 "$file" > /dev/null
  t2=$(date +%s.%N)
  echo "{\"bench\": \"snapshot\", \"points\": $N, \"dim\": $DIM, \"bytes\": $size, \"create_s\": $($PY -c "print($t1 - $t0)"), \"restore_s\": $($PY -c "print($t2 - $t1)")}" | tee -a "$OUT"
  "$Q" --data-dir "$DATA" drop c2 > /dev/null
  rm -f "$file"

  CG=/sys/fs/cgroup/memory/quiver-bench-$$
  raw=$((N * DIM * 4))
  cap=$($PY -c "print(int($raw * $CAP_RATIO))")
  anon=$($PY -c "import json; print(json.load(open('$D/disk.json'))['resident_after_search']['anon_bytes'])")
  if [ "$(id -u)" != 0 ] || [ ! -d /sys/fs/cgroup/memory ]; then
    echo "(skipped the capped run: needs root and /sys/fs/cgroup/memory)"
  elif [ $((anon + anon / 10)) -ge "$cap" ]; then
    # What must stay in memory (graph, codes, ids, payload slots) does not fit under the cap.
    echo "{\"bench\": \"capped-skipped\", \"points\": $N, \"dim\": $DIM, \"cap_bytes\": $cap, \"anon_bytes\": $anon}" | tee -a "$OUT"
  else
    echo "== $N: on disk, memory capped at $((cap >> 20)) MiB"
    mkdir -p "$CG"
    echo "$cap" > "$CG/memory.limit_in_bytes"
    # Start cold: the page cache holds nothing of the collection.
    sync; echo 1 > /proc/sys/vm/drop_caches
    if sh -c "echo \$\$ > $CG/cgroup.procs && exec \"\$@\"" sh \
      "$Q" --data-dir "$DATA" bench collection c --queries "$D/queries.npy" --truth "$D/truth.npy" \
      --queries-max "${CAPPED_QUERIES:-300}" --passes 2 --ef 32,64,128,256 > "$D/capped.json"; then
      peak=$(cat "$CG/memory.max_usage_in_bytes")
      sed "s/^{/{\"mode\": \"disk-capped\", \"cap_bytes\": $cap, \"peak_bytes\": $peak, \"cpu\": \"$CPU\", /" "$D/capped.json" | tee -a "$OUT"
    else
      echo "{\"bench\": \"capped-failed\", \"points\": $N, \"dim\": $DIM, \"cap_bytes\": $cap, \"failcnt\": $(cat "$CG/memory.failcnt")}" | tee -a "$OUT"
    fi
    rmdir "$CG"
  fi
  rm -rf "$DATA"
done
$PY bench/on_disk_report.py "$OUT"
