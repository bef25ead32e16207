#!/usr/bin/env bash
# The validation-only ablation sweep behind README "Choosing the defaults": one training per
# acquisition of the shared CPU lock, results appended to bench/results/ablations.jsonl. Every
# variant changes one thing against recipe v2 (250-step budget). The loss/imbalance choices
# (CE, class weights, oversampling, label smoothing, focal) are compared on validation across
# 10 seeds by the comparison grid's cached validation logits (bench/validation_choices.py).
# The many-label set gen80 is measured by bench/train_throughput.py --label-set gen80, the base rate across
# label sets (seed, seed5, seed3, gen80) by bench/lr_across_label_sets.py.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/ablations_2e-4.jsonl}
run() { flock /tmp/manga-cpu.lock .venv/bin/python bench/recipe_ablations.py --out "$OUT" "$@" 2>/dev/null | tail -1; }
# recipe v2 at its defaults (base rate 2e-4 since the rate study), then one change each
run --label-set seed --name v2
run --label-set seed --name v2-ema --set ema_decay=0.98
run --label-set seed --name v2-rdrop --set rdrop_alpha=1.0
run --label-set seed --name v2-cls-pooler --set architecture="'hf'"
run --label-set seed --name v2-unfrozen --set freeze_word_embeddings=False
run --label-set seed --name legacy --base legacy
