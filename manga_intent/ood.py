"""Energy-score out-of-distribution detection (Liu et al., 2020) with a validation-set threshold.

E(x) = -T * logsumexp(z / T): in-domain messages have low energy. The threshold is the
(1 - max_in_domain_flag_rate) quantile of in-domain validation energies, so at most that share of
real traffic is sent to the fallback; TPR and AUROC are then measured on held-out OOD messages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import logsumexp

#: The seed's operating point: at most this share of in-domain messages may be sent to the fallback.
MAX_IN_DOMAIN_FLAG_RATE = 0.05


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return -temperature * logsumexp(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def auroc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half (Mann-Whitney)."""
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs both positive and negative scores")
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = ranks[: len(pos)].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@dataclass(frozen=True)
class OODThreshold:
    threshold: float
    temperature: float
    in_domain_flag_rate: float
    ood_tpr: float
    auroc_energy: float
    auroc_msp: float
    n_in_domain: int
    n_ood: int

    def as_dict(self) -> dict:
        return asdict(self)


def fit_energy_threshold(
    in_domain_logits: np.ndarray,
    ood_logits: np.ndarray,
    *,
    max_in_domain_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE,
    temperature: float = 1.0,
) -> OODThreshold:
    if not 0 < max_in_domain_flag_rate < 1:
        raise ValueError(f"max_in_domain_flag_rate must be in (0, 1), got {max_in_domain_flag_rate}")
    e_in = energy_score(in_domain_logits, temperature)
    e_ood = energy_score(ood_logits, temperature)
    threshold = float(np.quantile(e_in, 1.0 - max_in_domain_flag_rate, method="higher"))
    msp = lambda z: np.exp(z - logsumexp(z, axis=1, keepdims=True)).max(axis=1)  # noqa: E731
    return OODThreshold(
        threshold=threshold,
        temperature=temperature,
        in_domain_flag_rate=float((e_in > threshold).mean()),
        ood_tpr=float((e_ood > threshold).mean()),
        auroc_energy=auroc(e_ood, e_in),
        auroc_msp=auroc(-msp(np.asarray(ood_logits, float)), -msp(np.asarray(in_domain_logits, float))),
        n_in_domain=int(len(e_in)),
        n_ood=int(len(e_ood)),
    )


def is_ood(logits: np.ndarray, threshold: float, temperature: float = 1.0) -> np.ndarray:
    return energy_score(logits, temperature) > threshold
