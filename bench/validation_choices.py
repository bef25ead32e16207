"""Loss/imbalance choices on VALIDATION across the comparison grid's seeds (no test or golden rows).

The grid (bench/run_comparison_grid.sh) caches every trained run's validation logits; this scores
them on the seed corpus's validation split, mean ± 95% CI across seeds, so the choice between plain CE,
class weights, oversampling, label smoothing and focal loss is made on validation with 10 seeds.

  python bench/validation_choices.py [bench/results/compare_seed] [step budget of the grid]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.label_sets import (
    SEED_CORPUS,  # noqa: E402
    label_set,  # noqa: E402
)
from manga_intent.calibrator_fit import shipped_ood_pools  # noqa: E402
from manga_intent.compare import REFERENCE, TRAINED_METHODS, OutputCache, cache_key, mean_ci  # noqa: E402
from manga_intent.data import data_hash, load_jsonl  # noqa: E402
from manga_intent.metrics import macro_f1  # noqa: E402
from manga_intent.training import TrainConfig  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/compare_seed")
    splits, labels = label_set("seed")
    version = data_hash(load_jsonl(SEED_CORPUS).examples)
    cache = OutputCache(out / "cache")
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else TrainConfig().max_steps
    base = TrainConfig(max_steps=steps)
    outliers = shipped_ood_pools().train_texts  # what the grid's `--ood-data shipped` used
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[e.label] for e in splits.val])
    rare = [index["checkout_help"], index["escalation"]]
    print(f"validation split n={len(y)}\n")
    print("| method | seeds | val acc | val macro-F1 | val rare acc |\n|---|---|---|---|---|")
    for method in (*TRAINED_METHODS, REFERENCE):
        accs, f1s, rares = [], [], []
        for seed in range(1, 21):
            outputs = cache.get(cache_key(method, seed, version, base, None, outliers))
            if outputs is None:
                continue
            predicted = outputs["val_logits"].argmax(1)
            accs.append(float((predicted == y).mean()))
            f1s.append(macro_f1(y, predicted, len(labels)))
            mask = np.isin(y, rare)
            rares.append(float((predicted[mask] == y[mask]).mean()))
        if accs:
            cells = [
                f"{m * 100:.1f} ± {h * 100:.1f}" for m, h in (mean_ci(accs), mean_ci(f1s), mean_ci(rares))
            ]
            print(f"| {method} | {len(accs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
