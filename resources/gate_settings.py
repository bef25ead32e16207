"""Thresholds of the golden-set gate and where the golden set lives, configurable per deployment."""

from pathlib import Path

import dagster as dg

from manga_intent.gate import GateThresholds
from manga_intent.shipped_data import GOLDEN, read_rows
from manga_intent.taxonomy import RARE_SHARE_THRESHOLD

_DEFAULTS = GateThresholds()


class GateSettings(dg.ConfigurableResource):
    """Seed defaults: accuracy >= 92%, rare-class accuracy >= 85%, P95 <= 15 ms, no significant regression."""

    min_accuracy: float = _DEFAULTS.min_accuracy
    min_rare_accuracy: float = _DEFAULTS.min_rare_accuracy
    max_p95_latency_ms: float = _DEFAULTS.max_p95_latency_ms
    regression_alpha: float = _DEFAULTS.regression_alpha
    rare_share_threshold: float = RARE_SHARE_THRESHOLD
    """Intents under this share of traffic (seed shares) make up the rare-class accuracy."""
    golden_path: str = ""
    """Golden set JSONL; default the shipped data/golden/golden.jsonl. Only the gate and gate reports read it."""

    def thresholds(self) -> GateThresholds:
        return GateThresholds(
            self.min_accuracy, self.min_rare_accuracy, self.max_p95_latency_ms, self.regression_alpha
        )

    def golden_rows(self) -> list[dict]:
        return read_rows(Path(self.golden_path) if self.golden_path else GOLDEN.path)
