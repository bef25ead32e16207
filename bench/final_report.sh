#!/usr/bin/env bash
# The shipped CLI on our data in one CPU-lock acquisition: train with the defaults (choices on validation),
# then score the golden set as a final report only.
set -u
cd "$(dirname "$0")/.."
R=${R:-bench/results}  # e.g. R=bench/results/v2_2e-4 keeps one report per default
mkdir -p "$R"
flock /tmp/manga-cpu.lock bash -c "
  .venv/bin/manga-intent train --data data/seed_corpus/seed_corpus.jsonl --out $R/v2_seed_model --quiet \
    > $R/v2_seed_train.json 2> $R/v2_seed_train.err &&
  .venv/bin/manga-intent evaluate --model $R/v2_seed_model --data data/golden/golden.jsonl --split all --quiet \
    > $R/v2_golden_report.json 2> $R/v2_golden_report.err"
