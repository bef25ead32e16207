"""Pool-based active learning: which unlabelled messages are worth a human's time.

Scores come from the model's calibrated probabilities: margin ("breaking ties", the default),
least confidence and entropy. Selection removes duplicates, then takes the most uncertain messages
round-robin across confusion groups (predicted intent, runner-up intent), so one batch is not 200
copies of the same confusion. `badge_batch` is the diversity-aware alternative (BADGE: k-means++ over
last-layer gradient embeddings), for callers that have the model's sentence features.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from manga_intent.data import normalized_key

STRATEGIES = ("margin", "least_confidence", "entropy")


def uncertainty(probs: Mapping[str, float], strategy: str = "margin") -> float:
    """Higher = more informative. `probs` maps every intent to its calibrated probability."""
    values = sorted(probs.values(), reverse=True)
    if not values:
        raise ValueError("empty probability distribution")
    if strategy == "margin":
        return 1.0 - (values[0] - (values[1] if len(values) > 1 else 0.0))
    if strategy == "least_confidence":
        return 1.0 - values[0]
    if strategy == "entropy":
        return -sum(p * math.log(p) for p in values if p > 0)
    raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")


def confusion_group(probs: Mapping[str, float]) -> tuple[str, str]:
    ranked = sorted(probs, key=probs.get, reverse=True)
    return ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]


def select_batch(
    candidates: Sequence[dict],
    k: int,
    *,
    strategy: str = "margin",
    exclude_keys: Iterable[str] = (),
) -> list[dict]:
    """Pick up to `k` candidates (dicts with `text` and `probs`), most informative first, balanced.

    Exact and normalised duplicates (and anything in `exclude_keys`, e.g. already in Label Studio)
    are skipped; each returned dict gains `uncertainty`, `strategy`, `message_key` and `group`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
    seen = set(exclude_keys)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for candidate in candidates:
        key = normalized_key(candidate["text"])
        if not key or key in seen:
            continue
        seen.add(key)
        group = confusion_group(candidate["probs"])
        groups[group].append(
            {
                **candidate,
                "message_key": key,
                "group": f"{group[0]}|{group[1]}",
                "uncertainty": uncertainty(candidate["probs"], strategy),
                "strategy": strategy,
            }
        )
    for members in groups.values():
        members.sort(key=lambda c: c["uncertainty"], reverse=True)
    # visit groups by their most uncertain member, take one from each per round
    order = sorted(groups, key=lambda g: groups[g][0]["uncertainty"], reverse=True)
    picked: list[dict] = []
    depth = 0
    while len(picked) < k and any(depth < len(groups[g]) for g in order):
        for group in order:
            if depth < len(groups[group]) and len(picked) < k:
                picked.append(groups[group][depth])
        depth += 1
    return picked


def gradient_embeddings(probs: np.ndarray, features: np.ndarray) -> np.ndarray:
    """BADGE's embedding (Ash et al., ICLR 2020): the cross-entropy gradient of the last linear layer at the
    model's own guess, (p − onehot(argmax p)) ⊗ h. Its norm is the model's uncertainty, its direction what the
    example would teach: k-means++ over it picks batches that are both uncertain and diverse."""
    probs, features = np.asarray(probs, dtype=np.float32), np.asarray(features, dtype=np.float32)
    residual = probs.copy()
    residual[np.arange(len(probs)), probs.argmax(axis=1)] -= 1.0
    return (residual[:, :, None] * features[:, None, :]).reshape(len(probs), -1)


def kmeans_pp_seeds(vectors: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """k-means++ seeding: the largest-norm vector first, then each next with probability ∝ squared distance
    to the nearest one chosen so far."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) <= k:
        return list(range(len(vectors)))
    chosen = [int(np.argmax((vectors**2).sum(axis=1)))]
    nearest = ((vectors - vectors[chosen[0]]) ** 2).sum(axis=1)
    while len(chosen) < k:
        total = nearest.sum()
        if total <= 0:  # every remaining vector coincides with a chosen one
            rest = [i for i in range(len(vectors)) if i not in set(chosen)]
            chosen.extend(rest[: k - len(chosen)])
            break
        pick = int(rng.choice(len(vectors), p=nearest / total))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((vectors - vectors[pick]) ** 2).sum(axis=1))
    return chosen


def badge_batch(
    candidates: Sequence[dict],
    probs: np.ndarray,
    features: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    exclude_keys: Iterable[str] = (),
) -> list[dict]:
    """A diversity-aware batch (BADGE): candidates[i] has probabilities probs[i] and features features[i]
    (the pooled sentence vector the head reads). Duplicates and `exclude_keys` are skipped as in
    `select_batch`; each returned dict gains `message_key`, `uncertainty` (gradient norm) and `strategy`."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not len(candidates) == len(probs) == len(features):
        raise ValueError(
            f"{len(candidates)} candidates, {len(probs)} probability rows, {len(features)} features"
        )
    seen, keep, keys = set(exclude_keys), [], []
    for i, candidate in enumerate(candidates):
        key = normalized_key(candidate["text"])
        if key and key not in seen:
            seen.add(key)
            keep.append(i)
            keys.append(key)
    if not keep:
        return []
    gradients = gradient_embeddings(np.asarray(probs)[keep], np.asarray(features)[keep])
    norms = np.linalg.norm(gradients, axis=1)
    picked = kmeans_pp_seeds(gradients, k, np.random.default_rng(seed))
    return [
        {**candidates[keep[j]], "message_key": keys[j], "uncertainty": float(norms[j]), "strategy": "badge"}
        for j in picked
    ]
