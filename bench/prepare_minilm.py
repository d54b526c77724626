"""A 384-d set of real text embeddings for the ANN benchmark: 50,000 passages and 1,000
queries from the Python 3.11 documentation (Debian's package python3.11-doc, installed by this
script: its reST sources are prose), embedded by Quiver's all-MiniLM-L6-v2 (`quiver embed`), with
the exact cosine top 10 of every query as ground truth.

Passages are windows of one to three consecutive sentences of a prose paragraph (6 to 80
words; code blocks, tables and directives left out), each kept once, from every file but every
tenth; queries are single sentences from those held-out files. Both drawn with a fixed seed.

Usage: bench/setup.sh && scripts/fetch-model.sh && cargo build --release -p quiver-cli &&
       bench/.venv/bin/python bench/prepare_minilm.py
Writes bench/data/minilm-50k/{base,queries,gt}.npy and texts.txt.
"""
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "minilm-50k")
QUIVER = os.path.join(HERE, "..", "target", "release", "quiver")
SOURCES = "/usr/share/doc/python3.11/html/_sources"
N_BASE, N_QUERIES, K = 50_000, 1_000, 10


def install():
    if not os.path.isdir(SOURCES):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "--no-install-recommends", "python3.11-doc"], check=True)


def sentences():
    out = []
    files_seen = 0
    for root, _, files in sorted(os.walk(SOURCES)):
        for name in sorted(files):
            if not name.endswith(".txt"):
                continue
            files_seen += 1
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                text = f.read()
            literal = False
            for para in re.split(r"\n\s*\n", text):
                after_literal, literal = literal, para.rstrip().endswith("::")
                lines = [l.strip() for l in para.splitlines()]
                # Prose (descriptions under directives are indented): not a literal block, no
                # directive, table, list, heading underline or code prompt.
                if after_literal or not lines or any(l.startswith(("..", "=", "-", "*", "+", "|", ">>>", "$", "#")) for l in lines):
                    continue
                para = " ".join(" ".join(lines).split())
                para = re.sub(r":[a-z:]+:`~?([^`<]*?)(?: <[^>]*>)?`", r"\1", para)  # :func:`name` -> name
                para = para.replace("``", "").replace("`_", "").replace("`", "").replace("**", "")
                sents = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para) if s[:1].isupper()]
                out.append((files_seen, sents))
    return out


def passages(paras):
    """Windows of one, two and three consecutive sentences of a paragraph (6 to 80 words), as a
    chunker with overlap cuts documents for retrieval; each kept once."""
    out = []
    for sents in paras:
        for width in (1, 2, 3):
            for i in range(len(sents) - width + 1):
                p = " ".join(sents[i : i + width])
                if 6 <= len(p.split()) <= 80:
                    out.append(p)
    return list(dict.fromkeys(out))


def main():
    install()
    paras = sentences()
    kept = passages([p for f, p in paras if f % 10])
    held = list(dict.fromkeys(s for f, p in paras if f % 10 == 0 for s in p if 6 <= len(s.split()) <= 60))
    in_base = set(kept)
    held = [s for s in held if s not in in_base]
    if len(kept) < N_BASE or len(held) < N_QUERIES:
        sys.exit(f"only {len(kept)} passages and {len(held)} query sentences")
    rng = np.random.default_rng(7)
    chosen = [kept[i] for i in rng.permutation(len(kept))[:N_BASE]] + [held[i] for i in rng.permutation(len(held))[:N_QUERIES]]
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "texts.txt")
    with open(path, "w") as f:
        f.write("\n".join(chosen) + "\n")
    vectors = os.path.join(OUT, "all.npy")
    subprocess.run([QUIVER, "embed", "--file", path, "--out", vectors], check=True)
    v = np.load(vectors).astype(np.float32)
    os.remove(vectors)
    base, queries = v[:N_BASE], v[N_BASE:]
    gt = np.argsort(-(queries @ base.T), axis=1)[:, :K].astype(np.int64)
    np.save(os.path.join(OUT, "base.npy"), base)
    np.save(os.path.join(OUT, "queries.npy"), queries)
    np.save(os.path.join(OUT, "gt.npy"), gt)
    print(f"{len(kept)} passages; {base.shape} base, {queries.shape} queries in {OUT}")


if __name__ == "__main__":
    main()
