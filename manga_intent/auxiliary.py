"""Which out-of-scope and attacked rows each training step adds, dealt so one forward pass covers them.

Recipe v2's defences add rows to every step: `outlier_batch_size` out-of-scope texts (outlier exposure,
drawn uniformly with replacement) and `adversarial_batch_size` attacked copies of training rows (taken in
turn from the run's attacked pool). Run as two extra forward passes padded to their longest row, they
cost as much as the clean batch itself: attacked rows are the longest of all, and a random draw of 16
pads to nearly the longest of them.

So the rows are drawn exactly as before, then, within each run of `steps_per_group` steps, sorted by
length and dealt back out in blocks of the same total size, block order shuffled: one forward pass per
step for both defences, padded only to its own block's longest row (as `batching.length_grouped_batches`
does for the clean rows). A step's block may then hold more out-of-scope rows and fewer attacked ones than
the nominal sizes, or the reverse; each term is summed over its rows and divided by its nominal batch size,
so every drawn row weighs what it did in its own batch and a group of steps adds up to the same loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AuxiliaryBlock:
    outlier: tuple[int, ...]
    """Indices into the out-of-scope encodings."""
    attacked: tuple[int, ...]
    """Indices into the attacked pool."""

    def __len__(self) -> int:
        return len(self.outlier) + len(self.attacked)


def auxiliary_plan(
    total_steps: int,
    *,
    outlier_lengths: Sequence[int] = (),
    outlier_per_step: int = 0,
    attacked_lengths: Sequence[int] = (),
    attacked_per_step: int = 0,
    generator: torch.Generator,
    steps_per_group: int = 8,
) -> list[AuxiliaryBlock]:
    """One block per step: out-of-scope rows drawn uniformly with replacement, attacked rows in turn, each
    run of `steps_per_group` steps' rows regrouped by length (see the module docstring)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1 (got {total_steps})")
    if outlier_per_step and not outlier_lengths:
        raise ValueError("outlier rows per step need out-of-scope texts")
    if attacked_per_step and not attacked_lengths:
        raise ValueError("attacked rows per step need an attacked pool")
    outlier_draws = (
        torch.randint(len(outlier_lengths), (total_steps, outlier_per_step), generator=generator).tolist()
        if outlier_per_step
        else [[] for _ in range(total_steps)]
    )
    plan: list[AuxiliaryBlock] = []
    for start in range(0, total_steps, steps_per_group):
        steps = range(start, min(start + steps_per_group, total_steps))
        rows = [("o", i) for s in steps for i in outlier_draws[s]]
        rows += [
            ("a", (s * attacked_per_step + j) % len(attacked_lengths))
            for s in steps
            for j in range(attacked_per_step)
        ]
        shuffled = [rows[k] for k in torch.randperm(len(rows), generator=generator).tolist()]
        ordered = sorted(  # longest first; the shuffle orders rows of equal length at random
            shuffled,
            key=lambda row: outlier_lengths[row[1]] if row[0] == "o" else attacked_lengths[row[1]],
            reverse=True,
        )
        size = outlier_per_step + attacked_per_step
        blocks = [ordered[b * size : (b + 1) * size] for b in range(len(steps))]
        for b in torch.randperm(len(blocks), generator=generator).tolist():
            block = blocks[b]
            plan.append(
                AuxiliaryBlock(
                    outlier=tuple(i for kind, i in block if kind == "o"),
                    attacked=tuple(i for kind, i in block if kind == "a"),
                )
            )
    return plan
