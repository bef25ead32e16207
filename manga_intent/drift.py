"""Distribution-shift statistics shared by the traffic simulator and the drift sensor."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence


def distribution(
    labels: Iterable[str], label_list: Sequence[str], smoothing: float = 0.5
) -> dict[str, float]:
    """Additively smoothed label distribution, so an empty class never makes KL infinite."""
    counts = Counter(labels)
    total = sum(counts[label] for label in label_list) + smoothing * len(label_list)
    return {label: (counts[label] + smoothing) / total for label in label_list}


def kl_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """KL(p || q) in nats over the keys of q; p is the observed window, q the reference."""
    total = 0.0
    for label, q_value in q.items():
        p_value = p.get(label, 0.0)
        if p_value > 0:
            if q_value <= 0:
                return math.inf
            total += p_value * math.log(p_value / q_value)
    return total


def window_kl(labels: Sequence[str], reference: Mapping[str, float], smoothing: float = 0.5) -> float:
    """KL of a window of predicted/observed intents against a reference distribution."""
    return kl_divergence(distribution(labels, list(reference), smoothing), reference)
