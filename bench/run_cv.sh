#!/usr/bin/env bash
# The cross-validated ablation (bench/cv_select.py, plan in bench/cv_plan.py): each chunk takes the shared
# CPU lock for at most ~12 minutes of trainings, appends one line per (label set, variant, fold) to
# bench/results/cv/runs.jsonl, and releases it so other agents interleave. Resumable: rerun to continue.
#   nohup bench/run_cv.sh main > bench/results/cv/run.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
PLAN=${1:-main}
BUDGET=${BUDGET:-12}
mkdir -p bench/results/cv
while true; do
  out=$(flock /tmp/manga-cpu.lock .venv/bin/python bench/cv_select.py run --plan "$PLAN" --budget-minutes "$BUDGET" 2>&1 \
    | grep -v -e Loading -e Warning -e warn)
  echo "$out"
  echo "$out" | grep -q -e "plan complete" -e " 0 jobs left" && break
  echo "$out" | grep -q "^cv " || { echo "cv chunk failed"; break; }
  sleep 5  # let a waiting agent take the lock
done
