#!/usr/bin/env bash
# Retrieval quality and ingestion throughput on a corpus the project ships: a frozen copy of
# Quiver's own documentation (bench/retrieval/corpus) and 30 questions written for it
# (bench/retrieval/questions.jsonl). Ingests the corpus into a fresh text collection (timed),
# then reports recall@5 and MRR@5 for dense, BM25 and hybrid retrieval.
# Needs the model (scripts/fetch-model.sh). Writes bench/results/retrieval.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p quiver-cli
scripts/fetch-model.sh >/dev/null
Q=target/release/quiver
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
$Q --data-dir "$DATA" create kb --model all-minilm-l6-v2 >/dev/null
INGEST=$($Q --data-dir "$DATA" --json ingest kb bench/retrieval/corpus)
EVAL=$($Q --data-dir "$DATA" bench retrieval kb --questions bench/retrieval/questions.jsonl -k 5)
mkdir -p bench/results
{ echo "$INGEST"; echo "$EVAL"; } > bench/results/retrieval.json
python3 - "$INGEST" "$EVAL" > bench/results/retrieval.md <<'PY'
import json, sys
ing = json.loads(sys.argv[1])
rows = [json.loads(l) for l in sys.argv[2].splitlines()]
print("# Retrieval on Quiver's own documentation (30 questions, k = 5)\n")
print(f"Ingestion: {ing['files']} files, {ing['chunks_written']} chunks in {ing['seconds']:.1f} s ({ing['chunks_per_s']:.1f} chunks/s, embedding included).\n")
print("| method | recall@5 | MRR@5 |\n|---|---|---|")
for r in rows:
    print(f"| {r['method']} | {r['recall_at_k']:.3f} | {r['mrr_at_k']:.3f} |")
PY
cat bench/results/retrieval.md
