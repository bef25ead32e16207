"""Static partitions: training seeds (a seed sweep is a backfill) and the comparison grid's method x seed."""

import dagster as dg

from manga_intent.compare import METHODS

DEFAULT_SEEDS = ("42", "123", "2024")
seed_partitions = dg.StaticPartitionsDefinition(list(DEFAULT_SEEDS))

#: The comparative-methods grid: every method with each of 10 training seeds (manga_intent.compare).
COMPARISON_SEEDS = tuple(str(s) for s in range(1, 11))
method_seed_partitions = dg.MultiPartitionsDefinition(
    {
        "method": dg.StaticPartitionsDefinition(list(METHODS)),
        "seed": dg.StaticPartitionsDefinition(list(COMPARISON_SEEDS)),
    }
)
