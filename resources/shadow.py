"""Shadow mode as Dagster resources: where the shadow log lives and what a shadow window must show."""

import os

import dagster as dg

from manga_intent.shadow_compare import ShadowThresholds
from serving.prediction_log import default_log_uri
from serving.shadow import ShadowLog, open_shadow_log

_DEFAULTS = ShadowThresholds()


class ShadowLogResource(dg.ConfigurableResource):
    """The service's shadow log, beside its prediction log (same SQLite file or PostgreSQL database, or
    `<prefix>-shadow/` on S3)."""

    prediction_log_uri: str = ""
    """SQLite path, postgresql:// URL or s3://bucket/prefix of the prediction log; default
    $MANGA_PREDICTION_LOG or the SQLite file."""

    def open(self) -> ShadowLog:
        return open_shadow_log(self.prediction_log_uri or default_log_uri())


class ShadowSettings(dg.ConfigurableResource):
    """The seed's 24 h shadow window (and/or a message count) and the rows it must pass before cutover."""

    window_messages: int = _DEFAULTS.window_messages
    window_hours: float = _DEFAULTS.window_hours
    min_agreement: float = _DEFAULTS.min_agreement
    max_confidence_drop: float = _DEFAULTS.max_confidence_drop
    max_ood_rate_increase: float = _DEFAULTS.max_ood_rate_increase
    max_p95_latency_ms: float = _DEFAULTS.max_p95_latency_ms
    max_p95_slowdown: float = _DEFAULTS.max_p95_slowdown
    """Over `max_p95_latency_ms` a challenger still passes unless shown more than this much slower than the
    champion (lower 95% bound of the paired P95 ratio)."""
    accuracy_margin: float = _DEFAULTS.accuracy_margin
    min_labelled: int = _DEFAULTS.min_labelled
    labels_uri: str = ""
    """JSONL of labelled messages ({text, label}); empty: the newest `human_labels` export."""

    def thresholds(self) -> ShadowThresholds:
        return ShadowThresholds(
            window_messages=self.window_messages,
            window_hours=self.window_hours,
            min_agreement=self.min_agreement,
            max_confidence_drop=self.max_confidence_drop,
            max_ood_rate_increase=self.max_ood_rate_increase,
            max_p95_latency_ms=self.max_p95_latency_ms,
            max_p95_slowdown=self.max_p95_slowdown,
            accuracy_margin=self.accuracy_margin,
            min_labelled=self.min_labelled,
        )


def shadow_log_from_env() -> ShadowLogResource:
    return ShadowLogResource(prediction_log_uri=os.environ.get("MANGA_PREDICTION_LOG", ""))
