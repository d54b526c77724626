#!/usr/bin/env bash
# Runs Qdrant's own REST test suite against `quiver serve` and reports how many of its in-scope
# items pass. The suite is Qdrant's code: it stays in ../shared/conformance/qdrant (or
# $QUIVER_CONFORMANCE_DIR) and is never copied here; without it this script says it skipped
# the run. The pass count is printed and ratchets: the run fails when fewer items pass than
# QUIVER_CONFORMANCE_FLOOR (raise it when more pass; docs/api.md lists the ones that fail).
# Usage: scripts/conformance.sh   (installs the suite's Python packages into target/conformance-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE="${QUIVER_CONFORMANCE_DIR:-../shared/conformance/qdrant}"
if [ ! -d "$SUITE/tests/openapi" ]; then
  echo "qdrant conformance: skipped, Qdrant's suite is not at $SUITE (it lives outside the repository)"
  exit 0
fi
SUITE=$(cd "$SUITE" && pwd)
for tool in python3 curl; do
  command -v "$tool" > /dev/null || { echo "error: $tool is needed (see README: On a fresh machine)"; exit 1; }
done
VENV=target/conformance-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=3.39,<4" "pytest>=8.4,<9" pytest-timeout \
  pytest-cases retry requests jsons more-itertools qdrant-client "pytest-subtests>=0.14.1,<0.15" pytest-xdist
source scripts/serve-bg.sh
start_quiver
# The suite's README lists these as out of scope (Qdrant's deployment and internals).
IGNORE=()
for f in test_cluster.py test_shard_key.py test_shard_snapshot.py test_service.py test_deferred_points.py \
         test_optimizations.py test_update_queue.py test_turbo4_storage.py test_turboquant.py; do
  IGNORE+=("--ignore=tests/openapi/$f")
done
# The suite's folder is read-only: no bytecode, no cache.
(cd "$SUITE" && PYTHONDONTWRITEBYTECODE=1 QDRANT_HOST="$QUIVER_URL" OPENAPI_FILE="$SUITE/openapi.json" \
  "$OLDPWD/$VENV/bin/python" -m pytest tests/openapi -q -rfE -p no:cacheprovider --timeout 60 -o addopts="" "${IGNORE[@]}" \
  > "$QUIVER_DATA.log" 2>&1) || true
# Kept for reading: which tests fail and why (docs/api.md summarises it).
cp "$QUIVER_DATA.log" target/conformance.log
SUMMARY=$(tail -1 "$QUIVER_DATA.log")
PASSED=$(echo "$SUMMARY" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
FAILED=$(echo "$SUMMARY" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
ERRORS=$(echo "$SUMMARY" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+' || echo 0)
# Session 7 reached 792 (the issue asked for 759, 90% of 843); five items of slack for the
# rate-limit tests, whose token counts depend on how fast a loaded machine runs them.
FLOOR="${QUIVER_CONFORMANCE_FLOOR:-787}"
echo "qdrant conformance: $PASSED of $((PASSED + FAILED + ERRORS)) in-scope items pass against quiver serve (floor $FLOOR)"
if [ "$PASSED" -lt "$FLOOR" ]; then
  echo "error: qdrant conformance fell below its floor ($PASSED < $FLOOR); see target/conformance.log"
  exit 1
fi
