"""Sensor and schedule behaviour on a synthetic prediction log (no servers needed)."""

import json
import random
from datetime import UTC, datetime

import dagster as dg

from manga_intent.taxonomy import SEED_TRAFFIC_SHARES
from resources.mlflow_registry import MlflowRegistry
from resources.monitoring_settings import MonitoringSettings
from resources.prediction_log import SqlitePredictionLogResource
from sensors.monitoring import drift_sensor, low_confidence_sensor
from sensors.schedules import monthly_retrain
from serving.prediction_log import SqlitePredictionLog


def fill(log, n, shares, confidence=0.9, seed=0):
    rng = random.Random(seed)
    intents = rng.choices(list(shares), weights=list(shares.values()), k=n)
    log.append(
        [
            {
                "ts": 0.0,
                "request_id": str(i),
                "text": f"m{i}",
                "channel": "web",
                "intent": intent,
                "confidence": confidence,
                "secondary_intent": None,
                "top": [],
                "probs": {intent: confidence},
                "is_ood": False,
                "energy": -5.0,
                "route": "route",
                "model_version": "1",
                "latency_ms": 1.0,
            }
            for i, intent in enumerate(intents)
        ]
    )


def context(tmp_path, cursor=None):
    return dg.build_sensor_context(
        cursor=cursor,
        resources={
            "prediction_log": SqlitePredictionLogResource(path=str(tmp_path / "log.sqlite")),
            "mlflow_registry": MlflowRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
            "monitoring": MonitoringSettings(window=500),
        },
    )


def test_small_samples_never_fire(tmp_path):
    fill(SqlitePredictionLog(tmp_path / "log.sqlite"), 499, {"promotion": 1.0})
    result = drift_sensor(context(tmp_path))
    assert isinstance(result, dg.SkipReason) and "499 new predictions" in result.skip_message


def test_stationary_traffic_does_not_drift_but_a_sale_does(tmp_path):
    log = SqlitePredictionLog(tmp_path / "log.sqlite")
    fill(log, 1000, SEED_TRAFFIC_SHARES, seed=1)
    ctx = context(tmp_path)
    result = drift_sensor(ctx)
    assert isinstance(result, dg.SkipReason) and "no drift" in result.skip_message  # no champion: seed shares
    assert json.loads(ctx.cursor)["last_id"] == 1000
    sale = {k: (0.20 if k == "promotion" else v * 0.8 / 0.95) for k, v in SEED_TRAFFIC_SHARES.items()}
    fill(log, 500, sale, seed=2)
    ctx = context(tmp_path, ctx.cursor)
    requests = drift_sensor(ctx)
    assert [r.run_key for r in requests] == ["drift-sample:1001-1500", "drift-retrain:1001-1500"]
    assert float(requests[0].tags["intent_kl"]) > 0.02 and requests[1].partition_key == "42"


def test_low_confidence_share_above_eight_percent(tmp_path):
    log = SqlitePredictionLog(tmp_path / "log.sqlite")
    fill(log, 500, SEED_TRAFFIC_SHARES, confidence=0.95)
    ctx = context(tmp_path)
    assert isinstance(low_confidence_sensor(ctx), dg.SkipReason)
    fill(log, 460, SEED_TRAFFIC_SHARES, confidence=0.95)
    fill(log, 40, SEED_TRAFFIC_SHARES, confidence=0.5)  # 8% exactly: not above
    ctx = context(tmp_path, ctx.cursor)
    assert isinstance(low_confidence_sensor(ctx), dg.SkipReason)
    fill(log, 450, SEED_TRAFFIC_SHARES, confidence=0.95)
    fill(log, 50, SEED_TRAFFIC_SHARES, confidence=0.5)  # 10%
    requests = low_confidence_sensor(context(tmp_path, ctx.cursor))
    assert [r.run_key for r in requests] == ["low-confidence:1001-1500"] and requests[
        0
    ].job_name == "labeling_job"


def test_monthly_schedule():
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 12, 1, 3, tzinfo=UTC),
        resources={"monitoring": MonitoringSettings()},
    )
    request = monthly_retrain(ctx)
    assert request.run_key == "monthly:2026-12" and request.partition_key == "42"
    assert monthly_retrain.cron_schedule == "0 3 1 * *"
