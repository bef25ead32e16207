#!/usr/bin/env bash
# Runs the OOD study grid one model per CPU-lock acquisition (resumable: finished runs are skipped).
#   bench/run_ood_study.sh "base oe_uniform oe_class aug" "42 123 2024"
set -euo pipefail
cd "$(dirname "$0")/.."
variants=${1:-"base oe_uniform oe_class aug oe_uniform_aug"}
seeds=${2:-"42 123 2024"}
for seed in $seeds; do
  for variant in $variants; do
    if [ -f "bench/results/ood/${variant}-s${seed}/results.json" ]; then continue; fi
    flock /tmp/manga-cpu.lock .venv/bin/python -m bench.ood_study train --variant "$variant" --seed "$seed" \
      --save-model --quiet
  done
done
