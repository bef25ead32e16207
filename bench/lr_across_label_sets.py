"""Recipe v2 at several learning rates on several label sets: does one default hold across label-set sizes?

  flock /tmp/manga-cpu.lock .venv/bin/python bench/lr_across_label_sets.py --label-sets gen80,seed --lrs 1e-4,3e-4

Everything else is recipe v2's default. Choices are read from the validation columns only; test is printed
for the record (the golden set is never loaded). One seed per row: on the seed corpus one validation row is
0.6 pp, on gen80 0.4 pp.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.label_sets import LABEL_SETS, label_set  # noqa: E402
from bench.train_throughput import scores  # noqa: E402
from manga_intent.training import TrainConfig, train_classifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-sets", default="gen80,seed", help=f"comma-separated, from {LABEL_SETS}")
    parser.add_argument("--lrs", default="1e-4,2e-4,3e-4", help="comma-separated encoder learning rates")
    parser.add_argument("--base-model", default=None, help="default: packaged all-MiniLM-L6-v2")
    args = parser.parse_args()
    for name in args.label_sets.split(","):
        splits, labels = label_set(name)
        for lr in (float(x) for x in args.lrs.split(",")):
            started = time.perf_counter()
            result = train_classifier(
                splits.train,
                splits.val,
                labels,
                replace(TrainConfig(), lr=lr),
                base_model=args.base_model,
                progress=False,
            )
            val_acc, val_f1 = scores(result.model, result.tokenizer, splits.val, labels)
            test_acc, test_f1 = scores(result.model, result.tokenizer, splits.test, labels)
            print(
                f"{name:<6} ({len(labels)} labels) v2 lr {lr:g}: val acc {val_acc:.4f} macro-F1 {val_f1:.4f} | "
                f"test acc {test_acc:.4f} macro-F1 {test_f1:.4f} | {result.steps} steps, "
                f"{time.perf_counter() - started:.0f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
