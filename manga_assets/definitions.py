"""Dagster code location of the MangaAssist intent platform (loaded by workspace.yaml)."""

import dagster as dg

from manga_assets.dataset import intent_dataset

defs = dg.Definitions(assets=[intent_dataset])
