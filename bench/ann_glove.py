"""Approximate search side by side, in one run, on glove-50-angular (390,000 x 50 base, 10,000
queries, recall@10): hnswlib, faiss IndexHNSWFlat and IndexIVFFlat, usearch, and Quiver
(`quiver bench ann`, HNSW at full precision and with int8 codes + rescoring).

Like ann-benchmarks: indexes are built on every core, queries run one at a time on one thread.
For each engine and each search setting it records QPS, recall@10 and the build time; memory is
the growth of the process's resident set while the index is built (the peers copy the vectors
into their index, as Quiver does). Quiver's result ids are written to .npy and its recall is
recomputed here from them, independently of Quiver's own report.

Usage: bench/setup.sh && bench/.venv/bin/python bench/prepare_glove.py &&
       cargo build --release -p quiver-cli && bench/.venv/bin/python bench/ann_glove.py
Writes bench/results/ann-glove50.{json,md,png}. Another data set: --data DIR --title NAME --out NAME
(e.g. the MiniLM embeddings of bench/prepare_minilm.py).
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
from machine import cpu_info

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "glove-50")
RESULTS = os.path.join(HERE, "results")
QUIVER = os.path.join(HERE, "..", "target", "release", "quiver")
K = 10
THREADS = os.cpu_count()


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def recall(ids, gt):
    hits = sum(len(set(a[:K].tolist()) & set(b[:K].tolist())) for a, b in zip(ids, gt))
    return hits / (len(ids) * K)


def one_at_a_time(search, queries):
    """Runs `search(q) -> ids` per query; returns (qps, ids)."""
    out = np.empty((len(queries), K), dtype=np.int64)
    t = time.perf_counter()
    for i in range(len(queries)):
        out[i] = search(queries[i])
    return len(queries) / (time.perf_counter() - t), out


def run_hnswlib(base, queries, gt, efs, m=16, efc=200):
    import hnswlib

    r0 = rss()
    t = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=m, ef_construction=efc, random_seed=100)
    index.set_num_threads(THREADS)
    index.add_items(base, np.arange(len(base)))
    build = time.perf_counter() - t
    mem = rss() - r0
    index.set_num_threads(1)
    rows = []
    for ef in efs:
        index.set_ef(max(ef, K))
        qps, ids = one_at_a_time(lambda q: index.knn_query(q, k=K)[0][0], queries)
        rows.append(dict(engine="hnswlib", params=f"M={m},efc={efc}", search=f"ef={ef}", qps=qps, recall=recall(ids, gt), build_s=build, mem_bytes=mem))
    return rows


def run_faiss_hnsw(base, queries, gt, efs, m=32, efc=40):
    import faiss

    faiss.omp_set_num_threads(THREADS)
    r0 = rss()
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    index.add(base)
    build = time.perf_counter() - t
    mem = rss() - r0
    faiss.omp_set_num_threads(1)
    rows = []
    for ef in efs:
        index.hnsw.efSearch = max(ef, K)
        qps, ids = one_at_a_time(lambda q: index.search(q[None, :], K)[1][0], queries)
        rows.append(dict(engine="faiss-hnsw", params=f"M={m},efc={efc}", search=f"ef={ef}", qps=qps, recall=recall(ids, gt), build_s=build, mem_bytes=mem))
    return rows


def run_faiss_ivf(base, queries, gt, nprobes, nlist=1024):
    import faiss

    faiss.omp_set_num_threads(THREADS)
    r0 = rss()
    t = time.perf_counter()
    quantizer = faiss.IndexFlatIP(base.shape[1])
    index = faiss.IndexIVFFlat(quantizer, base.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(base)
    index.add(base)
    build = time.perf_counter() - t
    mem = rss() - r0
    faiss.omp_set_num_threads(1)
    rows = []
    for nprobe in nprobes:
        index.nprobe = nprobe
        qps, ids = one_at_a_time(lambda q: index.search(q[None, :], K)[1][0], queries)
        rows.append(dict(engine="faiss-ivf", params=f"nlist={nlist}", search=f"nprobe={nprobe}", qps=qps, recall=recall(ids, gt), build_s=build, mem_bytes=mem))
    return rows


def run_usearch(base, queries, gt, efs, m=16, efc=200):
    from usearch.index import Index

    r0 = rss()
    t = time.perf_counter()
    index = Index(ndim=base.shape[1], metric="ip", dtype="f32", connectivity=m, expansion_add=efc)
    index.add(np.arange(len(base)), base, threads=THREADS)
    build = time.perf_counter() - t
    mem = rss() - r0
    rows = []
    for ef in efs:
        index.expansion_search = max(ef, K)
        qps, ids = one_at_a_time(lambda q: np.asarray(index.search(q, K, threads=1).keys, dtype=np.int64), queries)
        rows.append(dict(engine="usearch", params=f"M={m},efc={efc}", search=f"ef={ef}", qps=qps, recall=recall(ids, gt), build_s=build, mem_bytes=mem))
    return rows


def run_quiver(gt, efs, m, efc, quantization, label):
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [QUIVER, "bench", "ann", "--base", os.path.join(DATA, "base.npy"), "--queries", os.path.join(DATA, "queries.npy"),
               "--gt", os.path.join(DATA, "gt.npy"), "--metric", "cosine", "-k", str(K), "--index", "hnsw", "--m", str(m), "--ef-construct", str(efc),
               "--quantization", quantization, "--reorder", "--ef", ",".join(map(str, efs)), "--threads", str(THREADS), "--ids-out", tmp, "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows = []
        for line in out.splitlines():
            r = json.loads(line)
            ids = np.load(os.path.join(tmp, f"quiver_hnsw_{quantization}_ef{r['ef']}.npy"))
            rec = recall(ids, gt)
            assert abs(rec - r["recall"]) < 1e-9, (rec, r["recall"])
            rows.append(dict(engine=label, params=f"M={m},efc={efc}", search=f"ef={r['ef']}", qps=r["qps"], recall=rec, build_s=r["build_s"],
                             mem_bytes=r["rss_build_delta_bytes"], index_bytes=r["index_bytes"], p50_us=r["p50_us"], p99_us=r["p99_us"]))
        return rows


def run_quiver_filtered(shares, m, efc, quantization, ef):
    """Filtered search through a real collection (payload `bucket = id % 1000`, integer index)."""
    cmd = [QUIVER, "bench", "ann", "--base", os.path.join(DATA, "base.npy"), "--queries", os.path.join(DATA, "queries.npy"),
           "--metric", "cosine", "-k", str(K), "--m", str(m), "--ef-construct", str(efc), "--quantization", quantization,
           "--ef", str(ef), "--filtered", ",".join(map(str, shares)), "--filtered-queries", "2000", "--threads", str(THREADS)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if "filter_share" in line]


def best_qps_at(rows, engine, target):
    ok = [r["qps"] for r in rows if r["engine"] == engine and r["recall"] >= target]
    return max(ok) if ok else None


def qps_at(rows, engine, target):
    """QPS read off the engine's recall-QPS curve at `target` recall: the upper frontier of its
    points (each recall's best QPS), interpolated linearly in recall and in log QPS between the
    two frontier points around the target (None outside the measured recalls)."""
    pts = sorted((r["recall"], r["qps"]) for r in rows if r["engine"] == engine)
    frontier = []
    for rec, q in reversed(pts):  # from the highest recall down, keep points faster than all above
        if not frontier or q > frontier[-1][1]:
            frontier.append((rec, q))
    frontier.reverse()
    for (r0, q0), (r1, q1) in zip(frontier, frontier[1:]):
        if r0 <= target <= r1:
            w = (target - r0) / (r1 - r0) if r1 > r0 else 1.0
            return float(np.exp(np.log(q0) + w * (np.log(q1) - np.log(q0))))
    if frontier and frontier[-1][0] >= target and frontier[0][0] >= target:
        return frontier[0][1]
    return None


def main():
    global DATA
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=10_000, help="use the first N queries")
    ap.add_argument("--skip", default="", help="comma-separated engines to skip")
    ap.add_argument("--quiver-m", type=int, default=16)
    ap.add_argument("--quiver-efc", type=int, default=200)
    ap.add_argument("--out", default="ann-glove50", help="results file name (one per CPU class met)")
    ap.add_argument("--data", default=DATA, help="a folder with base.npy, queries.npy and gt.npy (e.g. bench/data/minilm-50k "
                    "from prepare_minilm.py); default glove-50")
    ap.add_argument("--title", default="glove-50-angular", help="the data set's name in the report")
    ap.add_argument("--fine", action="store_true", help="a finer ef sweep (29 values), for the interpolated QPS at a recall")
    args = ap.parse_args()
    DATA = args.data
    base = np.load(os.path.join(DATA, "base.npy"))
    queries = np.load(os.path.join(DATA, "queries.npy"))[: args.queries]
    gt = np.load(os.path.join(DATA, "gt.npy"))[: args.queries]
    skip = set(filter(None, args.skip.split(",")))
    efs = [10, 20, 40, 60, 80, 100, 120, 160, 200, 240, 320, 400, 480]
    if args.fine:
        efs = sorted(set(efs + [16, 24, 28, 32, 36, 44, 48, 52, 56, 64, 70, 90, 110, 140, 180, 280]))
    rows = []
    steps = [
        ("quiver", lambda: run_quiver(gt, efs, args.quiver_m, args.quiver_efc, "none", "quiver")),
        ("quiver-int8", lambda: run_quiver(gt, efs, args.quiver_m, args.quiver_efc, "int8", "quiver-int8")),
        # A smaller graph for the memory target: int8 codes and m = 10.
        ("quiver-int8-m10", lambda: run_quiver(gt, efs + [640, 800], 10, args.quiver_efc, "int8", "quiver-int8-m10")),
        ("hnswlib", lambda: run_hnswlib(base, queries, gt, efs)),
        ("faiss-hnsw", lambda: run_faiss_hnsw(base, queries, gt, efs)),
        ("faiss-ivf", lambda: run_faiss_ivf(base, queries, gt, [4, 8, 16, 32, 64, 128])),
        ("usearch", lambda: run_usearch(base, queries, gt, efs)),
    ]
    for name, step in steps:
        if name in skip:
            continue
        t = time.time()
        got = step()
        rows += got
        print(f"{name}: done in {time.time() - t:.0f}s", flush=True)
        for r in got:
            print(f"  {r['search']:>10}  recall {r['recall']:.4f}  {r['qps']:>9.0f} q/s", flush=True)

    filtered = [] if "filtered" in skip else run_quiver_filtered([0.5, 0.1, 0.01, 0.001], args.quiver_m, args.quiver_efc, "int8", 128)
    for f in filtered:
        print(f"filtered {f['filter_share']}: {f['qps']:.0f} q/s recall {f['recall']:.4f} ({f['speedup_vs_exact_scan']:.1f}x exact scan)", flush=True)

    engines = list(dict.fromkeys(r["engine"] for r in rows))
    summary = {}
    for target in (0.95, 0.99):
        summary[str(target)] = {e: best_qps_at(rows, e, target) for e in engines}
        summary[f"interpolated {target}"] = {e: qps_at(rows, e, target) for e in engines}
    meta = dict(machine=platform.platform(), cpus=THREADS, n_base=len(base), n_queries=len(queries), k=K, date=time.strftime("%Y-%m-%d"))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{args.out}.json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows, best_qps_at_recall=summary, filtered=filtered), f, indent=1)

    lines = [f"# ANN on {args.title} ({len(base):,} x {base.shape[1]}, {len(queries):,} queries, recall@{K})", "",
             f"{meta['date']}, {cpu_info()[0]}, {THREADS} threads to build, 1 thread to search, one query at a time.", "",
             "| engine | params | build s | memory MiB | best QPS at recall >= 0.95 | best QPS at recall >= 0.99 "
             "| QPS at 0.95, interpolated | QPS at 0.99, interpolated |", "|---|---|---|---|---|---|---|---|"]
    for e in engines:
        r0 = next(r for r in rows if r["engine"] == e)
        a, b = summary["0.95"][e], summary["0.99"][e]
        ia, ib = summary["interpolated 0.95"][e], summary["interpolated 0.99"][e]
        lines.append(f"| {e} | {r0['params']} | {r0['build_s']:.1f} | {r0['mem_bytes'] / 2**20:.0f} | {a and round(a) or '-'} | {b and round(b) or '-'} "
                     f"| {ia and round(ia) or '-'} | {ib and round(ib) or '-'} |")
    if filtered:
        lines += ["", "Filtered search through a Quiver collection (int8, M=16, ef=128; filter `bucket < share * 1000`, "
                  "an integer payload index; recall against the exact filtered answer; 2,000 queries):", "",
                  "| share matching | QPS | recall@10 | short results | graph searches | exact filtered scan QPS | unfiltered exact scan QPS | speedup vs exact scan |",
                  "|---|---|---|---|---|---|---|---|"]
        for f in filtered:
            lines.append(f"| {f['filter_share']} | {f['qps']:.0f} | {f['recall']:.4f} | {f['short_results']} | {f['graph_searches']} | "
                         f"{f['exact_filtered_qps']:.0f} | {f['exact_unfiltered_qps']:.0f} | {f['speedup_vs_exact_scan']:.1f}x |")
    lines += ["", "| engine | search | recall@10 | QPS |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['search']} | {r['recall']:.4f} | {r['qps']:.0f} |")
    with open(os.path.join(RESULTS, f"{args.out}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for e in engines:
        pts = sorted((r["recall"], r["qps"]) for r in rows if r["engine"] == e)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=e)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (1 thread, log)")
    ax.set_xlim(left=0.8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"{args.title}, {len(base):,} vectors ({THREADS}-core machine)")
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, f"{args.out}.png"), dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
