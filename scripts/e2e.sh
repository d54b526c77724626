#!/usr/bin/env bash
# End-to-end test of `quiver serve` with the official Qdrant Python client. Installs what it
# needs (qdrant-client, numpy) from PyPI into target/e2e-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/e2e-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "qdrant-client==1.20.0" numpy
# The debug binary as the workspace's tests build it (the same features), so after
# `cargo test --workspace` nothing is compiled again.
cargo test --workspace --locked --no-run --quiet 2> /dev/null || cargo test --workspace --locked --no-run
"$VENV/bin/python" tests/e2e/test_qdrant_client.py target/debug/quiver
