"""The defences' extra rows per step: drawn as before, dealt by length into one forward pass per step."""

import random
from collections import Counter

import pytest
import torch

from manga_intent.auxiliary import auxiliary_plan


def _lengths(n, seed, low, high):
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(n)]


def test_each_group_of_steps_keeps_its_draws_and_every_step_its_block_size():
    outlier_lengths, attacked_lengths = _lengths(50, 0, 4, 30), _lengths(200, 1, 10, 60)
    plan = auxiliary_plan(
        21,  # two full groups of 8 and a short one
        outlier_lengths=outlier_lengths,
        outlier_per_step=16,
        attacked_lengths=attacked_lengths,
        attacked_per_step=16,
        generator=torch.Generator().manual_seed(3),
    )
    assert len(plan) == 21
    assert all(len(block.outlier) == 16 and len(block.attacked) == 16 for block in plan)  # every step its mix
    for start in (0, 8, 16):
        group = plan[start : start + 8]
        steps = range(start, min(start + 8, 21))
        # attacked rows are the pool taken in turn, exactly as the separate batches took them
        expected = Counter((s * 16 + j) % 200 for s in steps for j in range(16))
        assert Counter(i for block in group for i in block.attacked) == expected
        assert Counter(i for block in group for i in block.outlier) == Counter(
            i for s in steps for i in _outlier_draws(21, 50, 16, 3)[s]
        )  # the same uniform draws
    assert all(0 <= i < 50 for block in plan for i in block.outlier)


def _outlier_draws(steps, n, per_step, seed):
    return torch.randint(n, (steps, per_step), generator=torch.Generator().manual_seed(seed)).tolist()


def test_blocks_pad_less_than_the_separate_random_batches():
    outlier_lengths, attacked_lengths = _lengths(700, 2, 5, 40), _lengths(4000, 3, 12, 70)
    plan = auxiliary_plan(
        250,
        outlier_lengths=outlier_lengths,
        outlier_per_step=16,
        attacked_lengths=attacked_lengths,
        attacked_per_step=16,
        generator=torch.Generator().manual_seed(0),
    )

    def width(block):
        return max(
            [outlier_lengths[i] for i in block.outlier] + [attacked_lengths[i] for i in block.attacked]
        )

    grouped = sum(len(block) * width(block) for block in plan)
    rng = random.Random(0)
    separate = sum(  # two passes per step: 16 random outlier rows, 16 attacked rows in turn
        16 * max(outlier_lengths[rng.randrange(700)] for _ in range(16))
        + 16 * max(attacked_lengths[(s * 16 + j) % 4000] for j in range(16))
        for s in range(250)
    )
    assert grouped < 0.85 * separate


def test_one_defence_alone_and_bad_inputs():
    plan = auxiliary_plan(
        5, attacked_lengths=[3, 9, 4], attacked_per_step=2, generator=torch.Generator().manual_seed(0)
    )
    assert all(block.outlier == () and len(block.attacked) == 2 for block in plan)
    with pytest.raises(ValueError, match="out-of-scope"):
        auxiliary_plan(3, outlier_per_step=4, generator=torch.Generator())
    with pytest.raises(ValueError, match="total_steps"):
        auxiliary_plan(0, generator=torch.Generator())
