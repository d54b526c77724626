#!/usr/bin/env bash
# Retrieval quality and ingestion throughput on two sets the project ships:
# * paraphrase questions: a frozen copy of Quiver's own documentation (bench/retrieval/corpus)
#   and 30 questions written for it (bench/retrieval/questions.jsonl);
# * identifier questions: 100 support notes, 40 of them each about one made-up error code, and
#   40 questions naming a code (bench/retrieval/identifiers, made by make_identifiers.py).
# Ingests each corpus into a fresh text collection (timed), then reports recall@5 and MRR@5 for
# dense, BM25 and hybrid retrieval. Needs the model (scripts/fetch-model.sh).
# Writes bench/results/retrieval.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p quiver-cli
scripts/fetch-model.sh >/dev/null
Q=target/release/quiver
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
run_set() { # name corpus questions
  $Q --data-dir "$DATA" create "$1" --model all-minilm-l6-v2 >/dev/null
  local ingest eval
  ingest=$($Q --data-dir "$DATA" --json ingest "$1" "$2")
  eval=$($Q --data-dir "$DATA" bench retrieval "$1" --questions "$3" -k 5)
  printf '%s\n%s\n' "$ingest" "$eval"
}
DOCS=$(run_set docs bench/retrieval/corpus bench/retrieval/questions.jsonl)
IDS=$(run_set ids bench/retrieval/identifiers/corpus bench/retrieval/identifiers/questions.jsonl)
mkdir -p bench/results
{ echo "$DOCS"; echo "$IDS"; } > bench/results/retrieval.json
python3 - "$DOCS" "$IDS" > bench/results/retrieval.md <<'PY'
import json, sys
def table(title, block):
    lines = block.splitlines()
    ing = json.loads(lines[0])
    rows = [json.loads(l) for l in lines[1:]]
    print(f"## {title} ({rows[0]['questions']} questions, k = {rows[0]['k']})\n")
    print(f"Ingestion: {ing['files']} files, {ing['chunks_written']} chunks in {ing['seconds']:.1f} s ({ing['chunks_per_s']:.1f} chunks/s, embedding included).\n")
    print("| method | recall@5 | MRR@5 |\n|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['recall_at_k']:.3f} | {r['mrr_at_k']:.3f} |")
    print()
print("# Retrieval quality\n")
table("Paraphrase questions on Quiver's own documentation", sys.argv[1])
table("Identifier questions (error codes) on 100 support notes", sys.argv[2])
PY
cat bench/results/retrieval.md
