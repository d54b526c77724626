"""`quiver serve` under load against the library's own rates: the same searches through the REST
API (wrk, 32 connections on loopback, each request one query) and through the library directly
(`quiver bench exact` on the collection reopened from disk: single searches on 1 thread, on all
cores, and all queries as one batch), on 100,000 random unit vectors of 384 dimensions, limit 10.

The server batches concurrent searches (crates/quiver-server/src/batcher.rs), so under load it
can answer more requests per second than the library's one-query-at-a-time rate.

Usage: bench/setup.sh && apt-get install -y wrk && cargo build --release -p quiver-cli &&
       bench/.venv/bin/python bench/serve_load.py
Writes bench/results/serve-load.{json,md}.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
QUIVER = os.path.join(HERE, "..", "target", "release", "quiver")
N, DIM, N_QUERIES, SEED = 100_000, 384, 200, 11
DURATION_S = 20
CONNECTIONS = 32


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unit(rng, n):
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    work = tempfile.mkdtemp(prefix="quiver-load-")
    try:
        rng = np.random.default_rng(SEED)
        base, queries = unit(rng, N), unit(rng, N_QUERIES)
        np.save(os.path.join(work, "base.npy"), base)
        np.save(os.path.join(work, "queries.npy"), queries)
        lib = json.loads(subprocess.run(
            [QUIVER, "bench", "exact", "--base", os.path.join(work, "base.npy"), "--queries", os.path.join(work, "queries.npy"),
             "--metric", "cosine", "-k", "10", "--concurrency", str(os.cpu_count()), "--reopen"],
            check=True, capture_output=True, text=True).stdout)
        data = os.path.join(work, "data")
        subprocess.run([QUIVER, "--data-dir", data, "create", "v", "--dim", str(DIM), "--metric", "cosine"], check=True, capture_output=True)
        subprocess.run([QUIVER, "--data-dir", data, "upsert", "v", "--file", os.path.join(work, "base.npy")], check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([QUIVER, "--data-dir", data, "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert "quiver serving on" in server.stdout.readline()
        bodies = [json.dumps({"query": q.tolist(), "limit": 10}) for q in queries[:50]]
        lua = os.path.join(work, "query.lua")
        with open(lua, "w") as f:
            f.write("local bodies = {\n" + ",\n".join("[[" + b + "]]" for b in bodies) + "\n}\n")
            f.write('local i = 0\nrequest = function()\n  i = i % #bodies + 1\n'
                    '  return wrk.format("POST", "/collections/v/points/query", {["Content-Type"] = "application/json"}, bodies[i])\nend\n')
        try:
            out = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{DURATION_S}s", "--latency", "-s", lua, f"http://127.0.0.1:{port}"],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            server.terminate()
            server.wait(timeout=30)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

        def pct(p):
            m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
            v, unit_ = float(m.group(1)), m.group(2)
            return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit_]

        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        socket_errors = re.search(r"Socket errors: (.*)", out)
        result = {
            "n": N, "dim": DIM, "limit": 10, "connections": CONNECTIONS, "duration_s": DURATION_S, "cpus": os.cpu_count(),
            "server_rps": rps, "p50_ms": pct(50), "p99_ms": pct(99),
            "non_2xx": int(errors.group(1)) if errors else 0, "socket_errors": socket_errors.group(1) if socket_errors else "none",
            "library_single_thread_qps": lib["single_qps"], "library_concurrent_qps": lib["concurrent_qps"],
            "library_batch_qps": lib["batch_qps"],
            "server_over_library_concurrent_single": rps / lib["concurrent_qps"],
            "wrk_output": out,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "serve-load.json"), "w") as f:
        json.dump(result, f, indent=2)
    md = f"""# `quiver serve` under load: /points/query, {N:,} x {DIM} (cosine, exact search), limit 10

wrk, {CONNECTIONS} connections, 2 threads, {DURATION_S} s, on loopback; the same {os.cpu_count()}-core machine runs the server.

| | requests/s | p50 | p99 | errors |
| --- | ---: | ---: | ---: | ---: |
| REST API (`quiver serve`) | {rps:,.0f} | {result['p50_ms']:.1f} ms | {result['p99_ms']:.1f} ms | {result['non_2xx']} non-2xx, socket errors: {result['socket_errors']} |
| library, single searches on {os.cpu_count()} threads | {lib['concurrent_qps']:,.0f} | | | |
| library, single searches on 1 thread | {lib['single_qps']:,.0f} | {lib['single_p50_us'] / 1000:.1f} ms | {lib['single_p99_us'] / 1000:.1f} ms | |
| library, all {N_QUERIES} queries as one batch | {lib['batch_qps']:,.0f} | | | |

Server requests/s over the library's single searches on {os.cpu_count()} threads: {result['server_over_library_concurrent_single']:.2f}x
(above 1: the server's micro-batching reads the vectors once for all waiting requests).
"""
    with open(os.path.join(HERE, "results", "serve-load.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
