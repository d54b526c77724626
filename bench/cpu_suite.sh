#!/usr/bin/env bash
# Every side-by-side benchmark that issue 18's targets are read from, on this machine, in one
# run: exact search against faiss (glove-50, random 384-d, MiniLM-50k), embedding against ONNX
# Runtime, and approximate search against hnswlib (fine ef sweeps on glove-50 and MiniLM-50k).
# Results go to bench/results/<benchmark>-<cpu>.{md,json}, <cpu> named from /proc/cpuinfo
# (vendor, family, model: e.g. amd-f25-m1, intel-f6-m143), so each CPU class keeps its own.
#
# Usage: bench/cpu_suite.sh [exact] [embed] [ann]   (no argument: all three; about 25 minutes
# on 2 cores, plus the first-time setup: the Python packages, the model, the two data sets)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(exact embed ann)
for s in "${steps[@]}"; do
  case "$s" in exact | embed | ann) ;; *) echo "unknown step '$s' (exact, embed, ann)" >&2; exit 2 ;; esac
done
py=bench/.venv/bin/python

bench/setup.sh
scripts/fetch-model.sh
cargo build --release --locked -p quiver-cli
$py bench/prepare_glove.py
[ -f bench/data/minilm-50k/gt.npy ] || $py bench/prepare_minilm.py

cpu=$($py bench/machine.py)
echo "== CPU class: $cpu"
skip=(--skip quiver,quiver-int8-m10,faiss-hnsw,faiss-ivf,usearch,filtered)
for s in "${steps[@]}"; do
  case "$s" in
    exact)
      $py bench/exact_vs_faiss.py --out "exact-glove50-$cpu"
      $py bench/exact_vs_faiss.py --dim384 --out "exact-384-$cpu"
      $py bench/exact_vs_faiss.py --data bench/data/minilm-50k --out "exact-minilm50k-$cpu"
      ;;
    embed)
      $py bench/embed_vs_onnx.py --out "embed-minilm-$cpu"
      ;;
    ann)
      $py bench/ann_glove.py --title glove-50-angular --out "ann-glove50-$cpu" --fine "${skip[@]}"
      $py bench/ann_glove.py --data bench/data/minilm-50k --title "MiniLM embeddings of the Python 3.11 docs" \
        --out "ann-minilm50k-$cpu" --queries 1000 --fine "${skip[@]}"
      ;;
  esac
done
echo "== results: bench/results/*-$cpu.md"
