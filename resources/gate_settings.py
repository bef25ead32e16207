"""Criteria of the golden-set gate and where the golden set lives, configurable per deployment."""

import dagster as dg

from manga_intent.gate import GateThresholds
from manga_intent.heldout import GATE, read_golden
from manga_intent.metrics import rare_labels_from_shares
from manga_intent.taxonomy import RARE_SHARE_THRESHOLD, SEED_TRAFFIC_SHARES

_DEFAULTS = GateThresholds()


def _bound(value: float) -> float | None:
    return value if value >= 0 else None


class GateSettings(dg.ConfigurableResource):
    """Seed defaults: accuracy ≥ 92% and not worse than the champion by more than 1 pp (lower 95% bound), no
    intent worse by more than 5 pp, each rare intent ≥ 85%, P95 ≤ 15 ms measured by the gate, and the OOD
    detector catching ≥ 85% of the held-out OOD half."""

    min_accuracy: float = _DEFAULTS.min_accuracy
    accuracy_margin: float = _DEFAULTS.accuracy_margin
    """Overall non-inferiority margin vs the champion (fraction: 0.01 = 1 pp)."""
    intent_margin: float = _DEFAULTS.intent_margin
    """Per-intent non-inferiority margin vs the champion (fraction)."""
    min_rare_accuracy: float = _DEFAULTS.min_rare_accuracy
    max_p95_latency_ms: float = _DEFAULTS.max_p95_latency_ms
    max_ece: float = -1.0
    """Calibrated-ECE ceiling; negative keeps the ECE row informational."""
    min_ood_tpr: float = 0.85
    """Held-out OOD half caught by the served detector at its validation threshold (the seed's operating
    point: ≥ 85% caught); negative keeps the row informational."""
    max_ood_flag_rate: float = -1.0
    """Golden messages flagged out of scope (seed: 0.05); negative keeps the row informational. Informational
    by default: the threshold is fitted to flag 5% of validation messages, so the golden rate sits at 5% by
    construction and a point check at 5% would reject about half of the good candidates."""
    max_injection_flip_rate: float = 0.05
    """Mean injection flip rate on golden under the held-out attack phrasings (the seed's open problem 3:
    ≤ 5%); negative keeps the row informational. A criterion since the synthetic rows left the default
    training data: every default-recipe model measured reads 0.025-0.047 (five study seeds, two demo seeds)."""
    bootstrap: int = _DEFAULTS.n_boot
    rare_share_threshold: float = RARE_SHARE_THRESHOLD
    """Intents under this share of traffic (seed shares) are rare: each must reach the rare floor on its own."""
    rare_intents: list[str] = []
    """Explicit rare intents (overrides the traffic-share rule), e.g. for a different label set."""
    relabel_map: dict[str, str] = {}
    """Champion label → candidate label for a deliberate renaming; empty: the label order must be identical."""
    latency_warmup: int = 20
    shadow_before_cutover: bool = True
    """A passed candidate becomes the `challenger` (shadow mode) when a champion exists; off: straight to champion."""
    golden_path: str = ""
    """Golden set JSONL; default the shipped data/golden/golden.jsonl. Only the gate and gate reports read it."""

    def thresholds(self) -> GateThresholds:
        return GateThresholds(
            min_accuracy=self.min_accuracy,
            accuracy_margin=self.accuracy_margin,
            intent_margin=self.intent_margin,
            min_rare_accuracy=self.min_rare_accuracy,
            max_p95_latency_ms=self.max_p95_latency_ms,
            max_ece=self.max_ece if self.max_ece >= 0 else None,
            min_ood_tpr=_bound(self.min_ood_tpr),
            max_ood_flag_rate=_bound(self.max_ood_flag_rate),
            max_injection_flip_rate=_bound(self.max_injection_flip_rate),
            n_boot=self.bootstrap,
        )

    def rare_labels(self) -> list[str]:
        return list(self.rare_intents) or rare_labels_from_shares(
            SEED_TRAFFIC_SHARES, self.rare_share_threshold
        )

    def golden_rows(self, purpose: str = GATE) -> list[dict]:
        """The golden rows for the gate (or a gate report: pass `heldout.GATE_REPORT`)."""
        return read_golden(purpose, self.golden_path or None)
