"""Training seeds as static partitions: a seed sweep is a backfill across them."""

import dagster as dg

DEFAULT_SEEDS = ("42", "123", "2024")
seed_partitions = dg.StaticPartitionsDefinition(list(DEFAULT_SEEDS))
