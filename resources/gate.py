"""Thresholds of the golden-set gate, configurable per deployment."""

import dagster as dg

from manga_intent.gate import GateThresholds


class GateSettings(dg.ConfigurableResource):
    """Seed defaults: accuracy >= 92%, rare-class accuracy >= 85%, P95 <= 15 ms, no significant regression."""

    min_accuracy: float = 0.92
    min_rare_accuracy: float = 0.85
    max_p95_latency_ms: float = 15.0
    regression_alpha: float = 0.05
    rare_share_threshold: float = 0.05
    """Intents under this share of traffic (seed shares) make up the rare-class accuracy."""
    golden_path: str = ""
    """Golden set JSONL; default the shipped data/golden/golden.jsonl."""

    def thresholds(self) -> GateThresholds:
        return GateThresholds(self.min_accuracy, self.min_rare_accuracy, self.max_p95_latency_ms,
                              self.regression_alpha)
