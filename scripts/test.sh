#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy with warnings as errors, and
# all tests (unit, property, model, crash, corruption, CLI). Needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
# Close with one summary line over every test binary.
awk '/^test result:/ {p += $4; f += $6} /^crash: / {p += $2; f += $4} END {printf "tests: %d passed, %d failed\n", p, f; exit (f > 0)}' target/test-output.txt
