"""How many consensus-kept synthetic rows join the real training rows, and which ones.

The seed's ablation (decision point 4) found filtered synthetic rows helping at ~9% of the training data
(5K beside 50K production rows) and rejected synthetic rows above 10% of the total. A synthetic set built
at its default size here is ~46% of the training rows, so the rows are capped by share, not taken whole.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal, get_args

from manga_intent.data import Example

Balance = Literal["proportional", "per_intent"]
BALANCES: tuple[str, ...] = get_args(Balance)


def _check_share(max_share: float) -> None:
    if not 0.0 <= max_share <= 1.0:
        raise ValueError(f"max_share must be in [0, 1] (got {max_share})")


def check_mix(max_share: float, balance: str) -> None:
    """Fail early on a share outside [0, 1] or an unknown balance (the asset helper calls it before it
    reads anything, so a bad run config fails before training)."""
    _check_share(max_share)
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES} (got {balance!r})")


def synthetic_budget(n_real: int, max_share: float) -> int:
    """Largest synthetic row count that keeps synthetic rows at most `max_share` of all training rows
    (`max_share` 1: no cap)."""
    _check_share(max_share)
    if n_real < 0:
        raise ValueError(f"n_real must be >= 0 (got {n_real})")
    if max_share == 1.0:
        return sys.maxsize
    # n_syn / (n_real + n_syn) <= s  <=>  n_syn <= s * n_real / (1 - s); the epsilon absorbs float error
    return int(max_share * n_real / (1.0 - max_share) + 1e-9)


def cap_synthetic_rows(
    kept: Sequence[Example],
    *,
    n_real: int,
    max_share: float,
    seed: int,
    balance: Balance = "proportional",
) -> list[Example]:
    """At most `max_share` of the training rows synthetic, drawn from `kept` with a seeded RNG.

    `proportional` draws a uniform sample (intents keep the kept set's mix); `per_intent` deals the budget
    round-robin over intents in a seeded order, so rare intents get as many rows as they have up to an
    equal share. The result is deterministic for (kept, n_real, max_share, seed, balance) and keeps the
    kept set's order, so a rerun trains on the same rows.
    """
    check_mix(max_share, balance)
    budget = synthetic_budget(n_real, max_share)
    if budget >= len(kept):
        return list(kept)
    rng = random.Random(seed)
    if balance == "proportional":
        chosen = set(rng.sample(range(len(kept)), budget))
    else:
        by_intent: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(kept):
            by_intent[row.label].append(i)
        queues = [rng.sample(ids, len(ids)) for _, ids in sorted(by_intent.items())]
        rng.shuffle(queues)
        chosen = set()
        while len(chosen) < budget:
            for queue in queues:
                if queue and len(chosen) < budget:
                    chosen.add(queue.pop())
    return [row for i, row in enumerate(kept) if i in chosen]
