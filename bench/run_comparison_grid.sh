#!/usr/bin/env bash
# The comparative-methods grid on the seed corpus (10 seeds x 8 methods), one seed per acquisition of the
# shared CPU lock (6 trainings, the post-hoc methods reuse plain_ce's run); results appended to
# $OUT/runs.jsonl, so an interrupted grid resumes where it stopped. Then the summary and table.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/compare_seed}
STEPS=${STEPS:-100}
SEEDS=${SEEDS:-10}
for seed in $(seq 1 "$SEEDS"); do
  flock /tmp/manga-cpu.lock .venv/bin/manga-intent compare --data data/seed_corpus/seed_corpus.jsonl \
    --out "$OUT" --seeds "$SEEDS" --only-seeds "$seed" --max-steps "$STEPS" --no-summary 2>&1 | grep -v Loading
done
.venv/bin/manga-intent compare --data data/seed_corpus/seed_corpus.jsonl --out "$OUT" --seeds "$SEEDS" \
  --max-steps "$STEPS" --quiet > "$OUT/summary.stdout.json"
