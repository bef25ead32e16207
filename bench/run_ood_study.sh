#!/usr/bin/env bash
# Runs the OOD study grid: train, then evaluate, each its own CPU-lock acquisition (resumable: a run whose
# results.json exists is skipped; a trained but unevaluated run is only evaluated).
#   bench/run_ood_study.sh "base oe_uniform oe_class aug" "42 123 2024"
set -euo pipefail
cd "$(dirname "$0")/.."
variants=${1:-"base oe_uniform oe_class aug oe_uniform_aug"}
seeds=${2:-"42 123 2024"}
for seed in $seeds; do
  for variant in $variants; do
    dir="bench/results/ood/${variant}-s${seed}"
    if [ -f "$dir/results.json" ]; then continue; fi
    if [ ! -f "$dir/train.json" ]; then
      flock /tmp/manga-cpu.lock .venv/bin/python -m bench.ood_study train --variant "$variant" --seed "$seed" --quiet
    fi
    flock /tmp/manga-cpu.lock .venv/bin/python -m bench.ood_study evaluate --variant "$variant" --seed "$seed"
  done
done
