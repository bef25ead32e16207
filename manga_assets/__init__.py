"""Dagster assets of the MangaAssist intent platform."""
