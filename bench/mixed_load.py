"""Reads under writes: `quiver serve` with an HNSW index answering searches (wrk, 16
connections) alone, then while 8 writer threads upsert new points in small batches. Reports
reads/s, read p50/p99, writes/s and the server's resident memory before and after, so the cost
of writes to readers is a ratio on the same machine in the same run.

Usage: apt-get install -y wrk && bench/setup.sh && cargo build --release -p quiver-cli &&
       bench/.venv/bin/python bench/mixed_load.py
Writes bench/results/mixed-load.{json,md}.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
QUIVER = os.environ.get("QUIVER_BIN", os.path.join(HERE, "..", "target", "release", "quiver"))
N, DIM, SEED = 100_000, 64, 5
DURATION_S = 15
CONNECTIONS = 16
WRITERS = 8
BATCH = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def wrk(lua, url):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{DURATION_S}s", "--latency", "-s", lua, url],
                         check=True, capture_output=True, text=True).stdout

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": pct(50), "p99_ms": pct(99),
            "non_2xx": int(errors.group(1)) if errors else 0}


def main():
    work = tempfile.mkdtemp(prefix="quiver-mixed-")
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((100, DIM)).astype(np.float32)
    def sample(n):
        x = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    base, queries = sample(N), sample(200)
    np.save(os.path.join(work, "base.npy"), base)
    data = os.path.join(work, "data")
    subprocess.run([QUIVER, "--data-dir", data, "create", "v", "--dim", str(DIM), "--metric", "cosine"], check=True, capture_output=True)
    subprocess.run([QUIVER, "--data-dir", data, "upsert", "v", "--file", os.path.join(work, "base.npy")], check=True, capture_output=True)
    subprocess.run([QUIVER, "--data-dir", data, "build-index", "v"], check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([QUIVER, "--data-dir", data, "serve", "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert "quiver serving on" in server.stdout.readline()
        bodies = [json.dumps({"query": q.tolist(), "limit": 10}) for q in queries[:50]]
        lua = os.path.join(work, "query.lua")
        with open(lua, "w") as f:
            f.write("local bodies = {\n" + ",\n".join("[[" + b + "]]" for b in bodies) + "\n}\n")
            f.write('local i = 0\nrequest = function()\n  i = i % #bodies + 1\n'
                    '  return wrk.format("POST", "/collections/v/points/query", {["Content-Type"] = "application/json"}, bodies[i])\nend\n')
        call(f"{url}/collections/v/points/query", "POST", {"query": queries[0].tolist(), "limit": 10})
        rss0 = rss_mib(server.pid)
        alone = wrk(lua, url)
        rss1 = rss_mib(server.pid)
        stop = threading.Event()
        written = [0] * WRITERS

        def writer(w):
            next_id = N + w * 10_000_000
            local = np.random.default_rng(SEED + 1 + w)
            while not stop.is_set():
                x = centres[local.integers(0, len(centres), BATCH)] + 0.3 * local.standard_normal((BATCH, DIM))
                x /= np.linalg.norm(x, axis=1, keepdims=True)
                pts = [{"id": next_id + i, "vector": v.tolist()} for i, v in enumerate(x)]
                call(f"{url}/collections/v/points?wait=true", "PUT", {"points": pts})
                next_id += BATCH
                written[w] += BATCH

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        t0 = time.time()
        for t in threads:
            t.start()
        mixed = wrk(lua, url)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        rss2 = rss_mib(server.pid)
        info = call(f"{url}/collections/v", "GET")["result"]
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    result = {"n": N, "dim": DIM, "connections": CONNECTIONS, "writers": WRITERS, "batch": BATCH, "duration_s": DURATION_S,
              "cpus": os.cpu_count(), "reads_alone": alone, "reads_with_writers": mixed,
              "writes_per_s": sum(written) / elapsed, "p99_ratio": mixed["p99_ms"] / alone["p99_ms"],
              "rss_mib": {"start": rss0, "after_reads": rss1, "after_writes": rss2},
              "points_after": info["points_count"], "indexed_after": info["indexed_vectors_count"]}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "mixed-load.json"), "w") as f:
        json.dump(result, f, indent=2)
    md = f"""# Reads under writes: `quiver serve`, {N:,} x {DIM} (cosine, HNSW int8), limit 10

wrk {CONNECTIONS} connections for {DURATION_S} s, alone and then beside {WRITERS} writer threads upserting {BATCH} new points
per request (`wait=true`); {os.cpu_count()} cores shared by the server, wrk and the writers.

| | reads/s | read p50 | read p99 | writes (points/s) |
| --- | ---: | ---: | ---: | ---: |
| reads alone | {alone['rps']:,.0f} | {alone['p50_ms']:.1f} ms | {alone['p99_ms']:.1f} ms | |
| reads with writers | {mixed['rps']:,.0f} | {mixed['p50_ms']:.1f} ms | {mixed['p99_ms']:.1f} ms | {result['writes_per_s']:,.0f} |

Read p99 with writers / alone: {result['p99_ratio']:.2f}x. Server memory: {rss0:.0f} MiB at start, {rss1:.0f} MiB after the
reads, {rss2:.0f} MiB after the writes ({info['points_count']:,} points, {info['indexed_vectors_count']:,} in the graph).
"""
    with open(os.path.join(HERE, "results", "mixed-load.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
