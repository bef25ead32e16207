"""Why a split's calibrated ECE reads what it reads: noise, a temperature fitted on too few rows, or a few
confidently wrong messages that no temperature can fix.

  python bench/split_calibration.py --data data/seed_corpus/seed_corpus.jsonl MODEL_DIR [MODEL_DIR ...]
      [--split test] [--bound 0.02] [--out FILE]

For each model directory that `manga-intent train` wrote, on one split of `--data` (the model's own split
seed), it reports:
- the served ECE (the model's own calibrator, as `manga-intent evaluate` uses it);
- how often a perfectly calibrated model with the same confidences reads at or below `--bound` on this many
  rows (`ece_noise_floor`);
- an **oracle** temperature: the one (on a fine log grid, 0.05-20) with the lowest ECE on this split's own
  labels. It reads the labels it is scored on, so it is the best ECE any temperature could reach here: a
  ceiling, never a result, never used to choose anything;
- the confidently wrong rows (confidence >= 0.9) and the most of the ECE they can account for.
Last, the rows every model gets confidently wrong. A report, not a selection: it changes no model.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.inference import softmax  # noqa: E402
from manga_intent.metrics import ece_noise_floor, expected_calibration_error  # noqa: E402

CONFIDENT = 0.9
ORACLE_GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 600))


@dataclass(frozen=True)
class SplitCalibration:
    """One model's calibration on one split, with the oracle temperature as a ceiling."""

    n: int
    accuracy: float
    served_ece: float
    noise_floor: dict
    oracle_temperature: float
    oracle_ece: float
    confident_errors: list[int]
    confident_error_ece_share: float

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "served_ece": self.served_ece,
            "noise_floor": self.noise_floor,
            "oracle_temperature": self.oracle_temperature,
            "oracle_ece": self.oracle_ece,
            "confident_errors": len(self.confident_errors),
            "confident_error_ece_share": self.confident_error_ece_share,
        }


def split_calibration(
    logits: np.ndarray, served_probs: np.ndarray, labels: np.ndarray, *, bound: float
) -> SplitCalibration:
    """The figures above from a split's raw logits, the served probabilities and the gold labels."""
    labels = np.asarray(labels, dtype=int)
    confidence = served_probs.max(axis=1)
    wrong = served_probs.argmax(axis=1) != labels
    confident_errors = np.flatnonzero(wrong & (confidence >= CONFIDENT))
    served_ece = expected_calibration_error(served_probs, labels)
    # a confidently wrong row adds at most its confidence / n to the ECE (it sits in a bin whose
    # confidence exceeds its accuracy): the share of the served ECE those rows can account for
    share = (
        float(min(1.0, confidence[confident_errors].sum() / len(labels) / served_ece)) if served_ece else 0.0
    )
    oracle_eces = [expected_calibration_error(softmax(logits, t), labels) for t in ORACLE_GRID]
    best = int(np.argmin(oracle_eces))
    return SplitCalibration(
        n=int(len(labels)),
        accuracy=float((~wrong).mean()),
        served_ece=float(served_ece),
        noise_floor=ece_noise_floor(served_probs, bound=bound),
        oracle_temperature=float(ORACLE_GRID[best]),
        oracle_ece=float(oracle_eces[best]),
        confident_errors=[int(i) for i in confident_errors],
        confident_error_ece_share=share,
    )


def served_probabilities(model_dir: str, logits: np.ndarray) -> np.ndarray:
    """What `manga-intent evaluate` serves: the fitted calibrator where there is one, else the temperature."""
    from manga_intent.calibrator_fit import ServingCalibration
    from manga_intent.model_io import read_temperature

    if ServingCalibration.exists(model_dir):
        return ServingCalibration.load(model_dir).calibrator.probabilities(logits)
    return softmax(logits, read_temperature(model_dir))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="model directories written by `manga-intent train`")
    parser.add_argument("--data", required=True, help="the labelled JSONL the models were trained from")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    parser.add_argument("--bound", type=float, default=0.02, help="the ECE target (issue: 0.02)")
    parser.add_argument("--out", help="also write the JSON report here")
    args = parser.parse_args()

    from manga_intent.data import examples_for_split, load_jsonl
    from manga_intent.inference import predict_logits
    from manga_intent.model_io import load_trained, silence_progress_bars

    silence_progress_bars()
    errors_by_model, rows = {}, []
    for model_dir in args.models:
        model, tokenizer, card = load_trained(model_dir)
        labels = card["labels"]
        recipe = card.get("recipe", {})
        examples = examples_for_split(
            load_jsonl(args.data, allowed_labels=labels).examples,
            args.split,
            seed=recipe.get("split_seed", 42),
        )
        index = {label: i for i, label in enumerate(labels)}
        y = np.array([index[e.label] for e in examples])
        logits = predict_logits(
            model, tokenizer, [e.text for e in examples], max_length=recipe.get("max_length", 128)
        )
        probs = served_probabilities(model_dir, logits)
        result = split_calibration(logits, probs, y, bound=args.bound)
        errors_by_model[model_dir] = [
            {
                "text": examples[i].text,
                "label": examples[i].label,
                "predicted": labels[int(probs[i].argmax())],
                "confidence": round(float(probs[i].max()), 3),
            }
            for i in result.confident_errors
        ]
        rows.append({"model": model_dir, **result.as_dict()})
    every = set.intersection(*({r["text"] for r in errors} for errors in errors_by_model.values()))
    report = {
        "data": args.data,
        "split": args.split,
        "bound": args.bound,
        "models": rows,
        "confident_errors": errors_by_model,
        "confidently_wrong_for_every_model": sorted(every),
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(
        f"\n| model | n | acc | served ECE | calibrated model <= {args.bound:g} | oracle T | oracle-T ECE "
        "| confident errors | their share of ECE (at most) |\n|---|---|---|---|---|---|---|---|---|",
        file=sys.stderr,
    )
    for r in rows:
        print(
            f"| {r['model']} | {r['n']} | {r['accuracy']:.3f} | {r['served_ece']:.4f} "
            f"| {r['noise_floor']['share_at_or_below_bound']:.0%} | {r['oracle_temperature']:.2f} "
            f"| {r['oracle_ece']:.4f} | {r['confident_errors']} | {r['confident_error_ece_share']:.0%} |",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
