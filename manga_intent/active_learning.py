"""Pool-based active learning: which unlabelled messages are worth a human's time.

Scores come from the model's calibrated probabilities: margin ("breaking ties", the default),
least confidence and entropy. Selection removes duplicates, then takes the most uncertain messages
round-robin across confusion groups (predicted intent, runner-up intent), so one batch is not 200
copies of the same confusion.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

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
