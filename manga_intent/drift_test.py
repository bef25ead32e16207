"""Intent drift as a hypothesis test with a known false-alarm rate.

The seed's rule "KL > 0.02 is drift" ignores sampling noise: a 500-message window of perfectly stationary
traffic over 10 intents already has E[KL] ≈ (K−1)/2N ≈ 0.009 and a long right tail. Here the window's
(smoothed) KL to the reference is compared with its own sampling distribution under the null "the window
is drawn from the reference": a parametric bootstrap of multinomial windows of the same size, smoothed the
same way. The p-value is the share of null windows at least as far from the reference; the sensor fires on
p < alpha, so a stationary window fires with probability ≈ alpha whatever the window size.

Both sides are smoothed, so no share is ever zero and KL is always finite: the window with add-half
counts (Jeffreys), the reference mixed with a little uniform mass (a zero-share intent in the champion's
validation predictions would otherwise make any message of that intent infinitely surprising).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

WINDOW_SMOOTHING = 0.5
REFERENCE_FLOOR = 1e-3
"""Share of uniform mass mixed into the reference."""
DEFAULT_ALPHA = 0.001
"""Per-window false-alarm rate: one stationary 500-message window in a thousand fires."""
DEFAULT_BOOTSTRAP = 20000


def smooth_reference(shares: Mapping[str, float], labels: Sequence[str], floor: float = REFERENCE_FLOOR):
    values = np.array([max(0.0, float(shares.get(label, 0.0))) for label in labels])
    if values.sum() <= 0:
        raise ValueError("reference distribution has no mass")
    values = values / values.sum()
    return (1.0 - floor) * values + floor / len(labels)


def _smoothed_window(counts: np.ndarray, smoothing: float = WINDOW_SMOOTHING) -> np.ndarray:
    counts = np.asarray(counts, dtype=float) + smoothing
    return counts / counts.sum(axis=-1, keepdims=True)


def kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p_i || q) for each row p_i (all entries positive)."""
    return np.sum(p * np.log(p / q), axis=-1)


@lru_cache(maxsize=64)
def _null_kls(reference: tuple[float, ...], n: int, bootstrap: int, seed: int) -> np.ndarray:
    q = np.array(reference)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, q, size=bootstrap)
    return np.sort(kl_rows(_smoothed_window(counts), q))


@dataclass(frozen=True)
class DriftTest:
    """One window against the reference: its KL, the p-value, and the KL the test would fire above."""

    n: int
    kl: float
    p_value: float
    alpha: float
    kl_threshold: float
    """The (1 − alpha) quantile of KL under the null at this window size: the calibrated KL threshold."""
    null_mean_kl: float
    drifted: bool
    window_shares: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def drift_test(
    predicted: Iterable[str],
    reference_shares: Mapping[str, float],
    *,
    alpha: float = DEFAULT_ALPHA,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> DriftTest:
    """Test a window of predicted intents against the reference distribution of predicted intents."""
    labels = list(reference_shares)
    counter = Counter(predicted)
    counts = np.array([counter[label] for label in labels], dtype=float)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("empty window: nothing to test")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    q = smooth_reference(reference_shares, labels)
    p = _smoothed_window(counts)
    kl = float(kl_rows(p, q))
    null = _null_kls(tuple(np.round(q, 12)), n, bootstrap, seed)
    p_value = float((1 + np.sum(null >= kl - 1e-15)) / (len(null) + 1))
    threshold = float(np.quantile(null, 1.0 - alpha))
    return DriftTest(
        n=n,
        kl=kl,
        p_value=p_value,
        alpha=alpha,
        kl_threshold=threshold,
        null_mean_kl=float(null.mean()),
        drifted=p_value < alpha,
        window_shares=dict(zip(labels, p.round(6).tolist())),
    )


def predicted_shares(predicted: Iterable[str], labels: Sequence[str]) -> dict[str, float]:
    """Plain (unsmoothed) shares of predicted intents: what the champion's reference is made of."""
    counter = Counter(predicted)
    total = sum(counter[label] for label in labels)
    if total == 0:
        raise ValueError("no predictions to build a reference from")
    return {label: counter[label] / total for label in labels}
