#!/usr/bin/env bash
# Property-based fuzzing of `quiver serve` against Qdrant's OpenAPI description, restricted to
# the endpoints Quiver implements (docs/api.md): schemathesis generates requests from the
# schema (valid and invalid), and every answer must be a non-5xx response from a live server.
# Usage: scripts/fuzz-api.sh [SECONDS]   (default 90; installs schemathesis into target/e2e-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_MAX="${1:-90}"
SPEC="${QUIVER_QDRANT_SPEC:-tests/fixtures/qdrant/qdrant-openapi-1.19.json}"
VENV=target/e2e-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
source scripts/serve-bg.sh
start_quiver
curl -s -H 'Content-Type: application/json' -X PUT "$QUIVER_URL/collections/c" -d '{"vectors":{"size":4,"distance":"Dot"}}' > /dev/null
curl -s -H 'Content-Type: application/json' -X PUT "$QUIVER_URL/collections/c/points" -d '{"points":[{"id":1,"vector":[1,0,0,0],"payload":{"a":1}},{"id":2,"vector":[0,1,0,0]}]}' > /dev/null
PATHS='^/(collections(/\{collection_name\}(/exists|/index(/\{field_name\})?|/points(/\{id\}|/delete|/payload(/delete|/clear)?|/scroll|/count|/query(/batch)?)?)?)?|healthz|livez|readyz|metrics)?$'
"$VENV/bin/schemathesis" run "$SPEC" --url "$QUIVER_URL" --checks not_a_server_error \
  --include-path-regex "$PATHS" --max-examples 25 --generation-deterministic \
  --phases examples,coverage,fuzzing --max-time "$SECONDS_MAX" --warnings off 2>&1 | tail -12
kill -0 $QUIVER_PID 2>/dev/null || { echo "api-fuzz: 0 passed, 1 failed (the server died)"; exit 1; }
echo "api-fuzz: 1 passed, 0 failed"
