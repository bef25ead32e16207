#!/usr/bin/env bash
# The comparative-methods grid on the seed corpus (10 seeds x 8 methods): three seeds per acquisition of the
# shared CPU lock (at most 15 trainings; the post-hoc methods and recipe v2 reuse plain_ce's run when they
# train the same model). Results are appended to $OUT/runs.jsonl, so an interrupted grid resumes where it
# stopped. Then the summary (JSON) and the table (markdown).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/compare_seed}
STEPS=${STEPS:-100}
SEEDS=${SEEDS:-10}
for chunk in 1,2,3 4,5,6 7,8,9 10; do
  flock /tmp/manga-cpu.lock .venv/bin/manga-intent compare --data data/seed_corpus/seed_corpus.jsonl \
    --out "$OUT" --seeds "$SEEDS" --only-seeds "$chunk" --max-steps "$STEPS" --no-summary 2>&1 | grep -v Loading
done
.venv/bin/manga-intent compare --data data/seed_corpus/seed_corpus.jsonl --out "$OUT" --seeds "$SEEDS" \
  --max-steps "$STEPS" --quiet > "$OUT/summary.stdout.json"
