#!/usr/bin/env bash
# End-to-end tests of `quiver serve` with the official Qdrant Python client and with the RAG
# frameworks' own Qdrant integrations, unchanged (LangChain, LlamaIndex, Haystack), and of
# `quiver serve --storage s3://...` against moto's S3 server on loopback. Installs
# what they need (pinned) from PyPI into target/e2e-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/e2e-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "qdrant-client==1.20.0" numpy \
  "langchain-qdrant==1.1.0" "llama-index-vector-stores-qdrant==0.10.4" "qdrant-haystack==13.1.0" "moto[server]==5.2.5"
# The debug binary as the workspace's tests build it (the same features), so after
# `cargo test --workspace` nothing is compiled again.
cargo test --workspace --locked --no-run --quiet 2> /dev/null || cargo test --workspace --locked --no-run
status=0
"$VENV/bin/python" tests/e2e/test_qdrant_client.py target/debug/quiver || status=1
"$VENV/bin/python" tests/e2e/test_frameworks.py target/debug/quiver || status=1
"$VENV/bin/python" tests/e2e/test_object_storage.py target/debug/quiver || status=1
exit $status
