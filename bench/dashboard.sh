#!/usr/bin/env bash
# How long each dashboard page takes to open on a collection of 1,000,000 points (128-d,
# clustered, with an HNSW index and a payload per point), in headless Chromium: from the
# navigation to the page drawn (its data fetched from the server and rendered), median of 5.
# Usage: bash bench/dashboard.sh [points]   (default 1000000; needs scripts/browser.sh's setup)
# Writes bench/results/dashboard.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
DIM=128
WORK=${WORK:-target/bench-dashboard}
Q=target/release/quiver
PY=target/browser-venv/bin/python
cargo build --release --locked -p quiver-cli > /dev/null
"$PY" -m pip install --quiet --disable-pip-version-check numpy "selenium==4.51.0"
rm -rf "$WORK" && mkdir -p "$WORK"
DATA="$WORK/data"
echo "== $N x $DIM: data"
"$PY" - "$WORK" "$N" "$DIM" << 'PYEOF'
import sys, numpy as np
d, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
basis = rng.standard_normal((24, dim)).astype(np.float32)
for i, s in enumerate(range(0, n, 500_000)):
    r = np.random.default_rng(1000 + s)
    m = min(500_000, n - s)
    z = r.standard_normal((m, 24)).astype(np.float32)
    np.save(f"{d}/part{i:03d}.npy", z @ basis + 0.05 * r.standard_normal((m, dim)).astype(np.float32))
PYEOF
"$Q" --data-dir "$DATA" create c --dim $DIM --metric cosine > /dev/null
start=0
for part in "$WORK"/part*.npy; do
  "$Q" --data-dir "$DATA" upsert c --file "$part" --start-id "$start" > /dev/null
  rm "$part"
  start=$((start + 500000))
done
"$Q" --data-dir "$DATA" compact c > /dev/null
t0=$(date +%s)
"$Q" --data-dir "$DATA" build-index c > /dev/null
echo "index built in $(( $(date +%s) - t0 )) s"
PORT=6401
"$Q" --data-dir "$DATA" serve --port $PORT > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2> /dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.1; done
# The first request after the start opens the collection (not part of any page's time below).
COLD=$(curl -s -o /dev/null -w "%{time_total}" "http://127.0.0.1:$PORT/collections/c")
# A payload on every point (a group of 8, by id), set by filter-free batches of the REST API.
"$PY" - "$PORT" "$N" << 'PYEOF'
import json, sys, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
def call(method, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=600).read())
for g in range(8):
    ops = [{"set_payload": {"payload": {"group": f"g{g}"}, "points": list(range(g, n, 8))}}]
    call("POST", "/collections/c/points/batch?wait=true", {"operations": ops})
call("PUT", "/collections/c/index", {"field_name": "group", "field_schema": "keyword"})
PYEOF
"$PY" bench/dashboard_timing.py "http://127.0.0.1:$PORT" "$N" "$DIM" "$COLD"
