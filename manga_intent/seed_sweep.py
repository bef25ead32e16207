"""Seed-sweep statistics: how much of a result is the recipe and how much is the seed.

Seed-mean of accuracy, rare-class accuracy, macro-F1 and calibrated ECE with a paired bootstrap CI (the same
resampled messages for every seed, averaged over seeds), and segment-wise accuracy by language segment,
rarity tier and channel as tabulated in the seed. The asset `seed_sweep_report` feeds it every materialized
seed partition.
"""

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from manga_intent.metrics import expected_calibration_error, macro_f1
from manga_intent.taxonomy import rarity_tier


def language_segment(row: dict) -> str:
    segments = row.get("segment") or []
    if row.get("language") in ("jp_en", "romaji", "other"):
        return {"jp_en": "JP-EN code-switch", "romaji": "romanized JP", "other": "other"}[row["language"]]
    if "jp_en" in segments:
        return "JP-EN code-switch"
    if "romaji" in segments:
        return "romanized JP"
    return "English-only"


def seed_mean_with_ci(
    per_seed_correct: list[np.ndarray],
    per_seed_probs: list[np.ndarray],
    y: np.ndarray,
    rare_mask: np.ndarray,
    n_boot: int,
    seed: int = 0,
) -> dict:
    """Mean over seeds and a paired bootstrap CI (resample messages once, score every seed on them)."""
    k = per_seed_probs[0].shape[1]

    def stats(idx):
        acc = np.mean([c[idx].mean() for c in per_seed_correct])
        rare_idx = idx[rare_mask[idx]]
        rare = np.mean([c[rare_idx].mean() for c in per_seed_correct]) if len(rare_idx) else np.nan
        f1 = np.mean([macro_f1(y[idx], p[idx].argmax(1), k) for p in per_seed_probs])
        ece = np.mean([expected_calibration_error(p[idx], y[idx]) for p in per_seed_probs])
        return np.array([acc, rare, f1, ece])

    point = stats(np.arange(len(y)))
    rng = np.random.default_rng(seed)
    samples = np.array([stats(rng.integers(0, len(y), len(y))) for _ in range(n_boot)])
    lo, hi = np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)
    names = ["accuracy", "rare_class_accuracy", "macro_f1", "ece_calibrated"]
    return {
        name: {"mean": float(point[i]), "ci95": [float(lo[i]), float(hi[i])]} for i, name in enumerate(names)
    }


def segment_table(rows: list[dict], per_seed_correct: list[np.ndarray], key) -> list[dict]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[key(row)].append(i)
    out = []
    for name, idx in sorted(groups.items(), key=lambda item: -len(item[1])):
        idx = np.array(idx)
        accs = [c[idx].mean() for c in per_seed_correct]
        out.append(
            {
                "segment": name,
                "share": len(idx) / len(rows),
                "n": len(idx),
                "accuracy": float(np.mean(accs)),
                "seed_min": float(np.min(accs)),
                "seed_max": float(np.max(accs)),
            }
        )
    return out


def sweep_summary(
    rows: Sequence[dict],
    per_seed_probs: list[np.ndarray],
    labels: Sequence[str],
    *,
    n_boot: int,
    by_channel: bool = True,
) -> dict:
    """Summary with CIs plus language / rarity (/ channel) tables for one evaluation set scored by every seed."""
    y = np.array([list(labels).index(r["label"]) for r in rows])
    correct = [p.argmax(1) == y for p in per_seed_probs]
    rare_mask = np.array([rarity_tier(r["label"]).startswith("rare") for r in rows])
    return {
        "summary": seed_mean_with_ci(correct, per_seed_probs, y, rare_mask, n_boot),
        "language": segment_table(rows, correct, language_segment),
        "rarity": segment_table(rows, correct, lambda r: rarity_tier(r["label"])),
        "channel": segment_table(rows, correct, lambda r: r.get("channel", "n/a")) if by_channel else [],
    }
