"""Window statistics for production monitoring: intent drift, confidence drift, low confidence.

The seed's thresholds: intent-distribution KL > 0.02 means drift (retrain); a share of calibrated
confidences below 0.6 above 8% asks for an active-learning batch. A minimum window keeps a
handful of messages from firing either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from manga_intent.drift import distribution, kl_divergence

CONFIDENCE_BINS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class MonitoringThresholds:
    kl_drift: float = 0.02
    confidence_kl_drift: float = 0.10
    low_confidence: float = 0.6
    low_confidence_share: float = 0.08
    min_window: int = 500


@dataclass(frozen=True)
class WindowStats:
    n: int
    first_id: int
    last_id: int
    intent_kl: float
    confidence_kl: float | None
    low_confidence_share: float
    ood_share: float
    mean_confidence: float
    predicted_shares: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def confidence_histogram(confidences: Sequence[float], smoothing: float = 0.5) -> np.ndarray:
    counts, _ = np.histogram(np.clip(confidences, 0, 1), bins=CONFIDENCE_BINS)
    counts = counts + smoothing
    return counts / counts.sum()


def window_stats(
    rows: Sequence[dict],
    reference_shares: Mapping[str, float],
    thresholds: MonitoringThresholds,
    reference_confidences: Sequence[float] | None = None,
) -> WindowStats:
    """Statistics of one window of prediction-log rows (dicts with id, intent, confidence, is_ood)."""
    if not rows:
        raise ValueError("empty window")
    labels = list(reference_shares)
    predicted = distribution([r["intent"] for r in rows if not r["is_ood"]], labels)
    confidences = np.array([r["confidence"] for r in rows], dtype=float)
    confidence_kl = None
    if reference_confidences is not None and len(reference_confidences) > 0:
        p, q = confidence_histogram(confidences), confidence_histogram(reference_confidences)
        confidence_kl = float(np.sum(p * np.log(p / q)))
    return WindowStats(
        n=len(rows),
        first_id=int(rows[0]["id"]),
        last_id=int(rows[-1]["id"]),
        intent_kl=kl_divergence(predicted, reference_shares),
        confidence_kl=confidence_kl,
        low_confidence_share=float((confidences < thresholds.low_confidence).mean()),
        ood_share=float(np.mean([bool(r["is_ood"]) for r in rows])),
        mean_confidence=float(confidences.mean()),
        predicted_shares=predicted,
    )


def complete_windows(rows: Sequence[dict], size: int) -> list[list[dict]]:
    """Split rows into consecutive full windows of `size`; a partial tail waits for more traffic."""
    return [list(rows[i : i + size]) for i in range(0, len(rows) - size + 1, size)]
