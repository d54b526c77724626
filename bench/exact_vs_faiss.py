"""Exact search and bulk upsert: Quiver against faiss IndexFlatIP, side by side in one run, on
glove-50-angular (390,000 x 50 base, 10,000 queries, cosine = inner product on unit vectors).

Measures (each the median of --repeats runs):
  * single: queries one at a time on one thread (faiss with omp_set_num_threads(1); Quiver's
    single-query search is single-threaded), queries per second;
  * batch: all 10,000 queries as one call on every core (faiss: BLAS + heaps; Quiver:
    search_batch, a tiled matrix product + top-k), queries per second;
  * upsert: `quiver upsert` of the 390,000 vectors from .npy into a new collection with
    durability on (fsync before acknowledging), wall time of the whole command.
It also checks that Quiver's exact results agree with faiss's (recall@10 against the ground truth).

Usage: bench/setup.sh && bench/.venv/bin/python bench/prepare_glove.py &&
       cargo build --release -p quiver-cli && bench/.venv/bin/python bench/exact_vs_faiss.py
Writes bench/results/exact-glove50.{json,md}.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time

import faiss
import numpy as np
from machine import cpu_info

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "glove-50")
QUIVER = os.path.join(HERE, "..", "target", "release", "quiver")
K = 10


def recall(ids, gt, k=K):
    hits = sum(len(set(a[:k]) & set(b[:k])) for a, b in zip(ids, gt))
    return hits / (len(ids) * k)


def synthetic(dim, n, n_queries, seed=7):
    """Unit vectors of `dim` (exact search's speed does not depend on the values), queries
    and their exact top-k, written where `quiver bench exact` reads them."""
    folder = os.path.join(HERE, "data", f"random-{dim}")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    def unit(m):
        return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    base, queries = unit(rng.standard_normal((n, dim))), unit(rng.standard_normal((n_queries, dim)))
    gt = np.argsort(-(queries @ base.T), axis=1)[:, :K]
    for name, a in (("base", base), ("queries", queries), ("gt", gt)):
        np.save(os.path.join(folder, f"{name}.npy"), a)
    return folder


def faiss_runs(base, queries, n_single):
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    faiss.omp_set_num_threads(1)
    t = time.perf_counter()
    single_ids = [index.search(queries[i : i + 1], K)[1][0] for i in range(n_single)]
    single_qps = n_single / (time.perf_counter() - t)
    faiss.omp_set_num_threads(os.cpu_count())
    t = time.perf_counter()
    _, batch_ids = index.search(queries, K)
    batch_qps = len(queries) / (time.perf_counter() - t)
    return single_qps, batch_qps, np.array(single_ids), batch_ids


def quiver_search_run(n_single, ids_dir, data):
    out = subprocess.run(
        [QUIVER, "bench", "exact", "--base", os.path.join(data, "base.npy"), "--queries", os.path.join(data, "queries.npy"),
         "--metric", "cosine", "-k", str(K), "--single-queries", str(n_single), "--ids-out", ids_dir],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def quiver_upsert_run(data, dim):
    tmp = tempfile.mkdtemp(prefix="quiver-upsert-")
    try:
        subprocess.run([QUIVER, "--data-dir", tmp, "create", "g", "--dim", str(dim), "--metric", "cosine"], check=True, capture_output=True)
        t = time.perf_counter()
        subprocess.run([QUIVER, "--data-dir", tmp, "upsert", "g", "--file", os.path.join(data, "base.npy")], check=True, capture_output=True)
        return time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--single-queries", type=int, default=2000)
    ap.add_argument("--dim384", action="store_true",
                    help="50,000 random unit vectors of 384 dimensions (MiniLM's size) and 2,000 queries instead of glove-50")
    ap.add_argument("--data", default=None,
                    help="a folder with base.npy, queries.npy and gt.npy (unit vectors), e.g. bench/data/minilm-50k "
                         "(50,000 MiniLM embeddings of Debian's texts, made by bench/prepare_minilm.py)")
    ap.add_argument("--out", default=None, help="results file name (default exact-glove50 / exact-384)")
    args = ap.parse_args()
    if args.data:
        data, dataset = os.path.abspath(args.data), os.path.basename(os.path.normpath(args.data))
        out_name = args.out or f"exact-{dataset}"
    else:
        data = synthetic(384, 50_000, 2_000) if args.dim384 else DATA
        dataset = "random unit vectors, 384-d" if args.dim384 else "glove-50-angular"
        out_name = args.out or ("exact-384" if args.dim384 else "exact-glove50")
    base = np.load(os.path.join(data, "base.npy"))
    queries = np.load(os.path.join(data, "queries.npy"))
    gt = np.load(os.path.join(data, "gt.npy"))
    cpu, flags = cpu_info()
    rows = {"faiss_single": [], "faiss_batch": [], "quiver_single": [], "quiver_batch": [], "quiver_upsert_s": []}
    ids_dir = tempfile.mkdtemp(prefix="quiver-ids-")
    for r in range(args.repeats):
        fs, fb, f_single_ids, f_batch_ids = faiss_runs(base, queries, min(args.single_queries, len(queries)))
        q = quiver_search_run(min(args.single_queries, len(queries)), ids_dir, data)
        up = quiver_upsert_run(data, base.shape[1])
        rows["faiss_single"].append(fs)
        rows["faiss_batch"].append(fb)
        rows["quiver_single"].append(q["single_qps"])
        rows["quiver_batch"].append(q["batch_qps"])
        rows["quiver_upsert_s"].append(up)
        print(f"run {r + 1}: faiss single {fs:.0f} q/s, batch {fb:.0f} q/s | quiver single {q['single_qps']:.0f} q/s, "
              f"batch {q['batch_qps']:.0f} q/s, upsert {len(base) / up:.0f} points/s ({q['isa']})", flush=True)
    q_single_ids = np.load(os.path.join(ids_dir, "quiver_single_ids.npy"))
    q_batch_ids = np.load(os.path.join(ids_dir, "quiver_batch_ids.npy"))
    shutil.rmtree(ids_dir, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    result = {
        "dataset": dataset, "n_base": len(base), "cpu": cpu, "cpu_flags": flags, "n_queries": len(queries), "k": K, "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "faiss_version": faiss.__version__, "quiver_isa": q["isa"],
        "median": med,
        "ratios": {
            "single_quiver_over_faiss": med["quiver_single"] / med["faiss_single"],
            "batch_quiver_over_faiss": med["quiver_batch"] / med["faiss_batch"],
        },
        "upsert_points_per_s": len(base) / med["quiver_upsert_s"],
        "recall_at_10_vs_gt": {
            "quiver_single": recall(q_single_ids, gt), "quiver_batch": recall(q_batch_ids, gt),
            "faiss_single": recall(f_single_ids, gt), "faiss_batch": recall(f_batch_ids, gt),
        },
        "runs": rows,
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"{out_name}.json"), "w") as f:
        json.dump(result, f, indent=2)
    r = result["ratios"]
    rc = result["recall_at_10_vs_gt"]
    md = f"""# Exact search and upsert, {dataset} ({len(base):,} x {base.shape[1]}, {len(queries):,} queries, k={K})

Machine: {cpu} ({', '.join(flags)}), {os.cpu_count()} cores, {platform.platform()}; Quiver kernels: {q['isa']}; faiss {faiss.__version__}.
Median of {args.repeats} runs, all in one run of `bench/exact_vs_faiss.py`.

| measurement | faiss IndexFlatIP | Quiver | Quiver / faiss |
| --- | ---: | ---: | ---: |
| one query at a time, 1 thread (queries/s, first {min(args.single_queries, len(queries))}) | {med['faiss_single']:,.0f} | {med['quiver_single']:,.0f} | {r['single_quiver_over_faiss']:.2f}x |
| all queries as one batch, {os.cpu_count()} threads (queries/s) | {med['faiss_batch']:,.0f} | {med['quiver_batch']:,.0f} | {r['batch_quiver_over_faiss']:.2f}x |
| `quiver upsert` from .npy, fsync on (points/s) | | {result['upsert_points_per_s']:,.0f} | |

Recall@10 against exact ground truth: Quiver single {rc['quiver_single']:.4f}, batch {rc['quiver_batch']:.4f};
faiss single {rc['faiss_single']:.4f}, batch {rc['faiss_batch']:.4f} (below 1.0 only where float rounding reorders near-ties).
"""
    with open(os.path.join(HERE, "results", f"{out_name}.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
