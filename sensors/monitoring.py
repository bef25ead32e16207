"""Production monitoring sensors over the prediction log: intent drift and low confidence.

Both log sensors walk the log in consecutive, complete windows (default 500 predictions) from a
JSON cursor, so a window is judged once; every run request's run_key names its window, so even a
re-evaluated tick can never launch the same window twice.
"""

import json

import dagster as dg

from manga_assets.jobs import LABELING_JOB, RETRAIN_JOB, labeling_job, retrain_job
from manga_intent.monitoring import complete_windows, window_stats
from manga_intent.taxonomy import SEED_TRAFFIC_SHARES
from resources.mlflow_registry import MlflowRegistry
from resources.monitoring_settings import MonitoringSettings
from resources.prediction_log import PredictionLogResource


def _cursor(context) -> dict:
    return json.loads(context.cursor) if context.cursor else {}


def reference_shares(registry: MlflowRegistry) -> tuple[dict, str]:
    """The champion's training label distribution (registry tag), else the seed's traffic shares."""
    try:
        champion = registry.champion()
        if champion is not None and champion.tags.get("train_label_shares"):
            shares = json.loads(champion.tags["train_label_shares"])
            if shares:
                return shares, f"champion v{champion.version} training distribution"
    except Exception as exc:  # the registry being down must not stop monitoring
        return dict(SEED_TRAFFIC_SHARES), f"seed traffic shares (registry unavailable: {exc})"
    return dict(SEED_TRAFFIC_SHARES), "seed traffic shares"


def _labeling_request(settings: MonitoringSettings, run_key: str, tags: dict) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        job_name=LABELING_JOB,
        tags=tags,
        run_config={"ops": {"labeling_batch": {"config": {"k": settings.labeling_k}}}},
    )


@dg.sensor(
    jobs=[retrain_job, labeling_job],
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Intent-distribution KL (and confidence-distribution shift) per 500-prediction window.",
)
def drift_sensor(
    context: dg.SensorEvaluationContext,
    prediction_log: PredictionLogResource,
    mlflow_registry: MlflowRegistry,
    monitoring: MonitoringSettings,
):
    cursor = _cursor(context)
    rows = prediction_log.open().read_since(cursor.get("last_id", 0))
    windows = complete_windows(rows, monitoring.window)
    if not windows:
        return dg.SkipReason(
            f"{len(rows)} new predictions; judging only full {monitoring.window}-message windows"
        )
    shares, source = reference_shares(mlflow_registry)
    thresholds = monitoring.thresholds()
    baseline = cursor.get("baseline")  # confidences of the first window served by the current model
    requests = []
    for window in windows:
        version = window[-1]["model_version"]
        if not baseline or baseline["model_version"] != version:
            baseline = {"model_version": version, "confidences": [r["confidence"] for r in window]}
            reference_confidences = None
        else:
            reference_confidences = baseline["confidences"]
        stats = window_stats(window, shares, thresholds, reference_confidences)
        drifted = stats.intent_kl > thresholds.kl_drift or (
            stats.confidence_kl is not None and stats.confidence_kl > thresholds.confidence_kl_drift
        )
        context.log.info(
            f"window {stats.first_id}-{stats.last_id}: intent KL {stats.intent_kl:.4f} vs {source}, "
            f"confidence KL {stats.confidence_kl}, drift={drifted}"
        )
        if drifted:
            key = f"{stats.first_id}-{stats.last_id}"
            tags = {
                "trigger": "drift",
                "window": key,
                "intent_kl": f"{stats.intent_kl:.4f}",
                "confidence_kl": f"{stats.confidence_kl or 0:.4f}",
            }
            requests.append(_labeling_request(monitoring, f"drift-sample:{key}", tags))
            requests.append(
                dg.RunRequest(
                    run_key=f"drift-retrain:{key}",
                    job_name=RETRAIN_JOB,
                    partition_key=monitoring.retrain_partition,
                    tags=tags,
                )
            )
    baseline["confidences"] = baseline["confidences"][-monitoring.window :]
    context.update_cursor(json.dumps({"last_id": windows[-1][-1]["id"], "baseline": baseline}))
    return requests or dg.SkipReason(
        f"{len(windows)} window(s) judged, no drift (KL threshold {thresholds.kl_drift})"
    )


@dg.sensor(
    jobs=[labeling_job],
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Share of calibrated confidences under 0.6 per window; above 8% requests labels.",
)
def low_confidence_sensor(
    context: dg.SensorEvaluationContext, prediction_log: PredictionLogResource, monitoring: MonitoringSettings
):
    cursor = _cursor(context)
    rows = prediction_log.open().read_since(cursor.get("last_id", 0))
    windows = complete_windows(rows, monitoring.window)
    if not windows:
        return dg.SkipReason(
            f"{len(rows)} new predictions; judging only full {monitoring.window}-message windows"
        )
    thresholds = monitoring.thresholds()
    requests = []
    for window in windows:
        stats = window_stats(window, SEED_TRAFFIC_SHARES, thresholds)
        context.log.info(
            f"window {stats.first_id}-{stats.last_id}: {stats.low_confidence_share:.1%} below "
            f"{thresholds.low_confidence}"
        )
        if stats.low_confidence_share > thresholds.low_confidence_share:
            key = f"{stats.first_id}-{stats.last_id}"
            requests.append(
                _labeling_request(
                    monitoring,
                    f"low-confidence:{key}",
                    {
                        "trigger": "low_confidence",
                        "window": key,
                        "low_confidence_share": f"{stats.low_confidence_share:.4f}",
                    },
                )
            )
    context.update_cursor(json.dumps({"last_id": windows[-1][-1]["id"]}))
    return requests or dg.SkipReason(f"{len(windows)} window(s) judged, low-confidence share within bounds")
