"""Which out-of-scope and attacked rows each training step adds, dealt so one forward pass covers them.

Recipe v2's defences add rows to every step: `outlier_batch_size` out-of-scope texts (outlier exposure,
drawn uniformly with replacement) and `adversarial_batch_size` attacked copies of training rows (taken in
turn from the run's attacked pool). Run as two extra forward passes padded to their longest row, they
cost as much as the clean batch itself: attacked rows are the longest of all, and a random draw of 16
pads to nearly the longest of them.

So the rows are drawn exactly as before, then, within each run of `steps_per_group` steps, each kind is
sorted by length and dealt back out in blocks of its batch size; the k-th longest block of out-of-scope
rows goes with the k-th longest block of attacked rows, and the pairs are dealt to the steps in random
order. Every step keeps its nominal mix (e.g. 16 out-of-scope + 32 attacked rows), and its one forward pass
for both defences is padded only to its own block's longest row (as `batching.length_grouped_batches` does
for the clean rows). (Sorting both kinds together into one pool, tried first, let a step's mix swing, e.g.
30 out-of-scope rows and 2 attacked ones; out of fold it lost 1.4 pp accuracy against the two-pass
batches.)
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
        outlier_blocks = _by_length(
            [i for s in steps for i in outlier_draws[s]], outlier_lengths, steps, generator
        )
        attacked_blocks = _by_length(
            [
                (s * attacked_per_step + j) % len(attacked_lengths)
                for s in steps
                for j in range(attacked_per_step)
            ],
            attacked_lengths,
            steps,
            generator,
        )
        for b in torch.randperm(len(steps), generator=generator).tolist():
            plan.append(AuxiliaryBlock(outlier=outlier_blocks[b], attacked=attacked_blocks[b]))
    return plan


def _by_length(
    rows: list[int], lengths: Sequence[int], steps: range, generator: torch.Generator
) -> list[tuple[int, ...]]:
    """The rows cut into one block per step, longest first (ties in random order)."""
    if not rows:
        return [() for _ in steps]
    shuffled = [rows[k] for k in torch.randperm(len(rows), generator=generator).tolist()]
    ordered = sorted(shuffled, key=lambda i: lengths[i], reverse=True)
    size = len(rows) // len(steps)
    return [tuple(ordered[b * size : (b + 1) * size]) for b in range(len(steps))]


def hardest_share(
    block: AuxiliaryBlock, outlier_losses: torch.Tensor, attacked_losses: torch.Tensor, share: float
) -> AuxiliaryBlock:
    """`block` cut to `share` of each kind (at least one row of a kind it has): the rows with the highest
    loss, in their original order (selective backprop; `TrainConfig.auxiliary_backprop_share`)."""
    if len(outlier_losses) != len(block.outlier) or len(attacked_losses) != len(block.attacked):
        raise ValueError(
            f"one loss per row: {len(block.outlier)} out-of-scope and {len(block.attacked)} attacked rows, "
            f"got {len(outlier_losses)} and {len(attacked_losses)} losses"
        )
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1] (got {share})")

    def keep(rows: tuple[int, ...], losses: torch.Tensor) -> tuple[int, ...]:
        if not rows:
            return rows
        k = max(1, round(share * len(rows)))
        return tuple(rows[i] for i in sorted(torch.topk(losses.float(), k).indices.tolist()))

    return AuxiliaryBlock(keep(block.outlier, outlier_losses), keep(block.attacked, attacked_losses))
