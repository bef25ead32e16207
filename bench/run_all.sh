#!/usr/bin/env bash
# Every measurement behind the closing note, in priority order, each step under the shared CPU lock
# (one training or one benchmark per acquisition). Outputs under bench/results/.
set -u
cd "$(dirname "$0")/.."
R=bench/results
mkdir -p "$R"
lock() { flock /tmp/manga-cpu.lock "$@"; }
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# 1. throughput: legacy vs v2 and each speed change, side by side in one process
lock .venv/bin/python bench/train_throughput.py --label-set seed --skip-accuracy > "$R/throughput_seed.txt" 2>&1
# 2. the shipped CLI on our data; golden scored last, as a final report
lock .venv/bin/manga-intent train --data data/seed_corpus/seed_corpus.jsonl --out "$R/v2_seed_model" --quiet \
  > "$R/v2_seed_train.json" 2> "$R/v2_seed_train.err"
lock .venv/bin/manga-intent evaluate --model "$R/v2_seed_model" --data data/golden/golden.jsonl --split all \
  --quiet > "$R/v2_golden_report.json" 2> "$R/v2_golden_report.err"
# 3. the comparison grid, one seed per acquisition
OUT=$R/compare_seed STEPS=100 SEEDS=10 bench/run_comparison_grid.sh > "$R/grid.log" 2>&1
# 4. many-label set: recipe v2 and legacy vs the plain loop at a rate tuned on validation
lock .venv/bin/python bench/train_throughput.py --label-set gen80 --skip-throughput > "$R/gen80.txt" 2>&1
# 5. validation ablations
bench/run_ablations.sh > "$R/ablations.log" 2>&1
# 6. JP-EN / jargon growth
lock .venv/bin/python bench/segment_growth.py > "$R/segment_growth.txt" 2>&1
