"""Monitoring thresholds and the sensors' knobs, configurable per deployment (seed values by default)."""

import dagster as dg

from manga_intent.monitoring import MonitoringThresholds

_DEFAULTS = MonitoringThresholds()


class MonitoringSettings(dg.ConfigurableResource):
    """Seed thresholds: KL > 0.02 is drift; more than 8% of confidences under 0.6 needs labels."""

    window: int = _DEFAULTS.min_window
    kl_drift: float = _DEFAULTS.kl_drift
    confidence_kl_drift: float = _DEFAULTS.confidence_kl_drift
    low_confidence: float = _DEFAULTS.low_confidence
    low_confidence_share: float = _DEFAULTS.low_confidence_share
    min_new_labels: int = 200
    retrain_partition: str = "42"
    labeling_k: int = 200

    def thresholds(self) -> MonitoringThresholds:
        return MonitoringThresholds(
            self.kl_drift,
            self.confidence_kl_drift,
            self.low_confidence,
            self.low_confidence_share,
            self.window,
        )
