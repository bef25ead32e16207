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
    min_new_audit_labels: int = 100
    retrain_partition: str = "42"
    labeling_k: int = 200
    drift_alpha: float = 0.001
    """Per-window false-alarm rate of the intent-drift test (p-value threshold)."""
    max_windows_per_tick: int = 20
    """A tick reads at most this many windows (a bounded query); a backlog is worked off over ticks."""
    retrain_cooldown_seconds: int = 6 * 3600
    """Minimum interval between sensor-triggered retrains (any sensor; the monthly schedule is exempt)."""
    max_client_share: float = 0.05
    """No client counts for more than this share of a window."""
    audit_share: float = 0.02
    """Share of traffic sent for random audit labels (unbiased accuracy)."""

    def thresholds(self) -> MonitoringThresholds:
        return MonitoringThresholds(
            self.kl_drift,
            self.confidence_kl_drift,
            self.low_confidence,
            self.low_confidence_share,
            self.window,
        )
