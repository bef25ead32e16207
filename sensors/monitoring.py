"""Production monitoring sensors over the prediction log: intent drift and low confidence.

Both walk the log in consecutive, complete windows (default 500 predictions) from a cursor that holds
the log's epoch and the last judged id; each tick reads at most `max_windows_per_tick` windows with one
bounded query. A reset log (new epoch) is judged again from its first row, and the epoch is part of every
run key, so Dagster's run-key deduplication never swallows a window of the new log. No client counts for
more than `max_client_share` of a window. Drift is a test with a known false-alarm rate
(`manga_intent.drift_test`): the window's predicted intents against the champion's predicted intents on
its validation split. Sensor-triggered retrains keep a cooldown between them.
"""

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from manga_assets.jobs import LABELING_JOB, RETRAIN_JOB, labeling_job, retrain_job
from manga_intent.drift_test import drift_test
from manga_intent.monitoring import complete_windows, window_stats
from manga_intent.poisoning import cap_per_source
from manga_intent.taxonomy import SEED_TRAFFIC_SHARES
from resources.mlflow_registry import MlflowRegistry
from resources.monitoring_settings import MonitoringSettings
from resources.prediction_log import PredictionLogResource
from sensors.intervals import tick_interval
from serving.log_cursor import LogCursor, read_windows


def champion_baseline(registry: MlflowRegistry) -> tuple[dict | None, str]:
    """The champion's `monitoring_baseline` tag (JSON), or None with the reason."""
    try:
        champion = registry.champion()
    except Exception as exc:  # the registry being down must not stop monitoring
        return None, f"registry unavailable: {exc}"
    if champion is None:
        return None, "no champion"
    raw = champion.tags.get("monitoring_baseline")
    return (
        (json.loads(raw), f"champion v{champion.version}") if raw else (None, f"champion v{champion.version}")
    )


def reference_shares(registry: MlflowRegistry) -> tuple[dict, str]:
    """The champion's PREDICTED intents on its validation split; else its training labels; else the seed."""
    baseline, source = champion_baseline(registry)
    if baseline and baseline.get("val_predicted_shares"):
        return baseline["val_predicted_shares"], f"{source} predicted intents on validation"
    try:
        champion = registry.champion()
        if champion is not None and champion.tags.get("train_label_shares"):
            return json.loads(champion.tags["train_label_shares"]), f"{source} training labels (no baseline)"
    except Exception:
        pass
    return dict(SEED_TRAFFIC_SHARES), f"seed traffic shares ({source})"


def retrain_cooldown(context, settings: MonitoringSettings, state: dict) -> str | None:
    """Why a retrain may not be requested now (None: it may). Counts runs any sensor launched."""
    now = time.time()
    last = state.get("last_retrain_request", 0.0)
    if now - last < settings.retrain_cooldown_seconds:
        return f"this sensor requested a retrain {now - last:.0f}s ago"
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a sensor evaluated without an instance (unit tests)
        instance = None
    if instance is not None:
        since = datetime.now(UTC) - timedelta(seconds=settings.retrain_cooldown_seconds)
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=RETRAIN_JOB, created_after=since), limit=20)
        triggered = [r for r in runs if r.tags.get("trigger") not in (None, "monthly_schedule")]
        if triggered:
            return f"run {triggered[0].run_id[:8]} ({triggered[0].tags.get('trigger')}) started within the cooldown"
    return None


def labeling_request(settings: MonitoringSettings, run_key: str, tags: dict) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        job_name=LABELING_JOB,
        tags=tags,
        run_config={"ops": {"labeling_batch": {"config": {"k": settings.labeling_k}}}},
    )


def _judged_windows(context, prediction_log, settings):
    cursor, state = LogCursor.parse(context.cursor)
    read = read_windows(prediction_log.open(), cursor, settings.window, settings.max_windows_per_tick)
    if read.reset:
        context.log.warning(
            f"prediction log was reset (epoch {cursor.epoch} -> {read.cursor.epoch}); judging it from its start"
        )
        state.pop("baseline", None)
    return read, state, complete_windows(read.rows, settings.window)


@dg.sensor(
    jobs=[retrain_job, labeling_job],
    minimum_interval_seconds=tick_interval(300),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Intent-drift test (KL with a bootstrap p-value) and confidence shift per 500-prediction window.",
)
def drift_sensor(
    context: dg.SensorEvaluationContext,
    prediction_log: PredictionLogResource,
    mlflow_registry: MlflowRegistry,
    monitoring: MonitoringSettings,
):
    read, state, windows = _judged_windows(context, prediction_log, monitoring)
    if not windows:
        context.update_cursor(read.cursor.dump(**state))
        return dg.SkipReason(
            f"{len(read.rows)} new predictions; judging only full {monitoring.window}-message windows"
        )
    shares, source = reference_shares(mlflow_registry)
    thresholds = monitoring.thresholds()
    baseline = state.get("baseline")  # confidences of the first window served by the current model
    requests, retrain_asked = [], False
    for window in windows:
        judged = cap_per_source(window, monitoring.max_client_share, monitoring.window)
        if len(judged.rows) < monitoring.window // 2:
            context.log.warning(
                f"window {window[0]['id']}-{window[-1]['id']}: only {len(judged.rows)} rows left after per-client "
                f"caps {judged.capped}; not judged (too few independent sources)"
            )
            continue
        version = window[-1]["model_version"]
        if not baseline or baseline["model_version"] != version:
            baseline = {"model_version": version, "confidences": [r["confidence"] for r in judged.rows]}
            reference_confidences = None
        else:
            reference_confidences = baseline["confidences"]
        stats = window_stats(judged.rows, shares, thresholds, reference_confidences)
        test = drift_test(
            [r["intent"] for r in judged.rows if not r["is_ood"]], shares, alpha=monitoring.drift_alpha
        )
        confidence_shift = (
            stats.confidence_kl is not None and stats.confidence_kl > thresholds.confidence_kl_drift
        )
        drifted = test.drifted or confidence_shift
        key = f"{read.cursor.tag}:{window[0]['id']}-{window[-1]['id']}"
        context.log.info(
            f"window {key}: intent KL {test.kl:.4f} (p={test.p_value:.2g}, calibrated threshold "
            f"{test.kl_threshold:.4f}) vs {source}; confidence KL {stats.confidence_kl}; capped {judged.capped}; "
            f"drift={drifted}"
        )
        if not drifted:
            continue
        tags = {
            "trigger": "drift",
            "window": key,
            "intent_kl": f"{test.kl:.4f}",
            "intent_kl_p_value": f"{test.p_value:.3g}",
            "kl_threshold": f"{test.kl_threshold:.4f}",
            "confidence_kl": f"{stats.confidence_kl or 0:.4f}",
            "capped_clients": str(len(judged.capped)),
        }
        requests.append(labeling_request(monitoring, f"drift-sample:{key}", tags))
        if retrain_asked:
            continue
        blocked = retrain_cooldown(context, monitoring, state)
        if blocked:
            context.log.info(f"window {key}: retrain not requested, cooldown: {blocked}")
            continue
        retrain_asked = True
        state["last_retrain_request"] = time.time()
        requests.append(
            dg.RunRequest(
                run_key=f"drift-retrain:{key}",
                job_name=RETRAIN_JOB,
                partition_key=monitoring.retrain_partition,
                tags=tags,
            )
        )
    if baseline:
        baseline["confidences"] = baseline["confidences"][-monitoring.window :]
        state["baseline"] = baseline
    context.update_cursor(LogCursor(read.cursor.epoch, windows[-1][-1]["id"]).dump(**state))
    return requests or dg.SkipReason(
        f"{len(windows)} window(s) judged, no drift (alpha {monitoring.drift_alpha}, reference: {source})"
    )


@dg.sensor(
    jobs=[labeling_job],
    minimum_interval_seconds=tick_interval(300),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Share of calibrated confidences under 0.6 per window; above 8% requests labels.",
)
def low_confidence_sensor(
    context: dg.SensorEvaluationContext, prediction_log: PredictionLogResource, monitoring: MonitoringSettings
):
    read, state, windows = _judged_windows(context, prediction_log, monitoring)
    if not windows:
        context.update_cursor(read.cursor.dump(**state))
        return dg.SkipReason(
            f"{len(read.rows)} new predictions; judging only full {monitoring.window}-message windows"
        )
    thresholds = monitoring.thresholds()
    requests = []
    for window in windows:
        judged = cap_per_source(window, monitoring.max_client_share, monitoring.window)
        if len(judged.rows) < monitoring.window // 2:
            continue  # one client filled the window: nothing independent to judge
        stats = window_stats(judged.rows, SEED_TRAFFIC_SHARES, thresholds)
        key = f"{read.cursor.tag}:{window[0]['id']}-{window[-1]['id']}"
        context.log.info(f"window {key}: {stats.low_confidence_share:.1%} below {thresholds.low_confidence}")
        if stats.low_confidence_share > thresholds.low_confidence_share:
            requests.append(
                labeling_request(
                    monitoring,
                    f"low-confidence:{key}",
                    {
                        "trigger": "low_confidence",
                        "window": key,
                        "low_confidence_share": f"{stats.low_confidence_share:.4f}",
                    },
                )
            )
    context.update_cursor(LogCursor(read.cursor.epoch, windows[-1][-1]["id"]).dump(**state))
    return requests or dg.SkipReason(f"{len(windows)} window(s) judged, low-confidence share within bounds")
