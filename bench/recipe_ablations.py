"""One recipe variant on one label set, scored on the VALIDATION split only; one JSON line appended.

  python bench/recipe_ablations.py --label-set seed --name v2 --set lr=1e-4 --set head_lr_multiplier=10 \
      --out bench/results/ablations.jsonl

Run it under `flock /tmp/manga-cpu.lock` (one training per lock acquisition). The test split and the
golden set are never read here: these numbers choose defaults.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.label_sets import label_set  # noqa: E402
from manga_intent.calibration import fit_temperature  # noqa: E402
from manga_intent.inference import predict_logits, softmax  # noqa: E402
from manga_intent.metrics import expected_calibration_error, macro_f1  # noqa: E402
from manga_intent.training import LEGACY_RECIPE, TrainConfig, train_classifier  # noqa: E402


def parse_overrides(pairs: list[str]) -> dict:
    names = {f.name for f in fields(TrainConfig)}
    out = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if key not in names:
            raise SystemExit(f"unknown TrainConfig field {key!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-set", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--base", choices=["v2", "legacy"], default="v2")
    parser.add_argument("--set", action="append", default=[], help="TrainConfig field=value")
    parser.add_argument("--seed", type=int, default=123, help="init and sampler seed")
    parser.add_argument("--out", default="bench/results/ablations.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    splits, labels = label_set(args.label_set)
    base = LEGACY_RECIPE if args.base == "legacy" else TrainConfig()
    config = replace(base, init_seed=args.seed, sampler_seed=args.seed, **parse_overrides(args.set))
    started = time.perf_counter()
    result = train_classifier(splits.train, splits.val, labels, config, progress=False)
    wall = time.perf_counter() - started
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[e.label] for e in splits.val])
    logits = predict_logits(result.model, result.tokenizer, [e.text for e in splits.val])
    pred = logits.argmax(axis=1)
    fit = fit_temperature(logits, y)
    row = {
        "label_set": args.label_set,
        "name": args.name,
        "seed": args.seed,
        "n_labels": len(labels),
        "train_rows": len(splits.train),
        "val_rows": len(splits.val),
        "val_accuracy": float((pred == y).mean()),
        "val_macro_f1": macro_f1(y, pred, len(labels)),
        "val_ece_uncalibrated": expected_calibration_error(softmax(logits), y),
        "val_nll_uncalibrated": fit.nll_before,
        "temperature": fit.temperature,
        "best_step": result.best.step,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "examples_per_second": result.examples_per_second,
        "threads": result.threads,
        "history": [[h.step, round(h.val_accuracy, 4), round(h.val_macro_f1, 4)] for h in result.history],
        "config": {k: v for k, v in asdict(result.config).items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(
        json.dumps(
            {
                k: row[k]
                for k in (
                    "label_set",
                    "name",
                    "val_accuracy",
                    "val_macro_f1",
                    "best_step",
                    "steps",
                    "train_seconds",
                    "examples_per_second",
                )
            }
        )
    )


if __name__ == "__main__":
    main()
