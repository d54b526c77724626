#!/usr/bin/env bash
# Quiver's main job at this stage: build the `quiver` binary and walk through the command line
# on a local data folder (no server): create a collection, upsert points with payloads, search
# with and without a filter, page through, count, delete by filter, compact, inspect.
# Usage: scripts/demo.sh [DATA_DIR]   (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p quiver-cli
Q="$PWD/target/release/quiver"
DATA="${1:-$(mktemp -d)/quiver-data}"
export QUIVER_DATA_DIR="$DATA"
step() { printf '\n\033[1m$ quiver %s\033[0m\n' "$*"; "$Q" "$@"; }

echo "data folder: $DATA"
step create fruit --dim 4 --metric cosine
cat > "$DATA/../fruit.jsonl" <<'JSONL'
{"id": 1, "vector": [0.9, 0.1, 0.0, 0.2], "payload": {"name": "apple", "color": "red", "price": 1.2, "tags": ["sweet", "crisp"]}}
{"id": 2, "vector": [0.8, 0.3, 0.1, 0.1], "payload": {"name": "cherry", "color": "red", "price": 4.0, "tags": ["sweet"]}}
{"id": 3, "vector": [0.1, 0.9, 0.2, 0.0], "payload": {"name": "lemon", "color": "yellow", "price": 0.6, "tags": ["sour"]}}
{"id": 4, "vector": [0.2, 0.8, 0.4, 0.1], "payload": {"name": "banana", "color": "yellow", "price": 0.3, "tags": ["sweet", "soft"]}}
{"id": 5, "vector": [0.1, 0.2, 0.9, 0.3], "payload": {"name": "blueberry", "color": "blue", "price": 5.5, "tags": ["sweet", "small"]}}
{"id": "6f1c2a4e-8d3b-4c5a-9e7f-1a2b3c4d5e6f", "vector": [0.7, 0.2, 0.6, 0.1], "payload": {"name": "plum", "color": "purple", "price": 2.1}}
JSONL
step upsert fruit --file "$DATA/../fruit.jsonl"
step index fruit color --type keyword
step search fruit --vector '[1, 0.2, 0.1, 0.1]' -k 3
step search fruit --vector '[1, 0.2, 0.1, 0.1]' -k 3 --filter '{"must": [{"key": "tags", "match": {"value": "sweet"}}], "must_not": [{"key": "color", "match": {"value": "red"}}]}'
step search fruit --vector '[1, 0.2, 0.1, 0.1]' -k 2 --filter '{"must": [{"key": "price", "range": {"lt": 2.0}}]}' --json
step scroll fruit --limit 4
step count fruit --filter '{"must": [{"key": "color", "match": {"any": ["red", "yellow"]}}]}'
step delete fruit --filter '{"must": [{"key": "price", "range": {"gt": 5}}]}'
step compact fruit
step info fruit
step list
