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


def fill(log, n, shares, confidence=0.9, seed=0, client=None):
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
                "client": client or f"user-{rng.randrange(1000)}",
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
    tag = log.epoch()[:8]
    assert [r.run_key for r in requests] == [
        f"drift-sample:{tag}:1001-1500",
        f"drift-retrain:{tag}:1001-1500",
    ]
    assert float(requests[0].tags["intent_kl"]) > 0.02 and requests[1].partition_key == "42"
    assert float(requests[0].tags["intent_kl_p_value"]) < 0.001


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
    assert [r.run_key for r in requests] == [f"low-confidence:{log.epoch()[:8]}:1001-1500"] and requests[
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


def test_a_reset_log_is_judged_again_from_its_start_with_fresh_run_keys(tmp_path):
    path = tmp_path / "log.sqlite"
    sale = {k: (0.20 if k == "promotion" else v * 0.8 / 0.95) for k, v in SEED_TRAFFIC_SHARES.items()}
    fill(SqlitePredictionLog(path), 500, sale, seed=2)
    first = context(tmp_path)
    keys_before = [r.run_key for r in drift_sensor(first)]
    for suffix in ("", "-wal", "-shm"):  # the log is rotated away: a new file, ids restart at 1
        (tmp_path / f"log.sqlite{suffix}").unlink(missing_ok=True)
    fill(SqlitePredictionLog(path), 500, sale, seed=3)
    again = context(tmp_path, first.cursor)
    keys_after = [r.run_key for r in drift_sensor(again)]
    assert keys_before[0].endswith(":1-500") and keys_after[0].endswith(":1-500")
    assert not set(keys_before) & set(keys_after)  # fresh keys: Dagster will not deduplicate them away
    assert json.loads(again.cursor)["epoch"] != json.loads(first.cursor)["epoch"]


def test_one_client_cannot_fill_a_window(tmp_path):
    log = SqlitePredictionLog(tmp_path / "log.sqlite")
    fill(log, 512, {"promotion": 1.0}, seed=2, client="batch-bot")  # 8 skewed batch requests of 64
    result = drift_sensor(context(tmp_path))
    assert isinstance(result, dg.SkipReason), [r.run_key for r in result]
    assert "no drift" in result.skip_message


def test_retrains_keep_a_cooldown(tmp_path):
    log = SqlitePredictionLog(tmp_path / "log.sqlite")
    sale = {k: (0.20 if k == "promotion" else v * 0.8 / 0.95) for k, v in SEED_TRAFFIC_SHARES.items()}
    fill(log, 1500, sale, seed=4)
    ctx = context(tmp_path)
    jobs = [r.job_name for r in drift_sensor(ctx)]
    assert jobs.count("retrain_job") == 1 and jobs.count("labeling_job") == 3  # three windows, one retrain
    fill(log, 500, sale, seed=5)
    jobs = [r.job_name for r in drift_sensor(context(tmp_path, ctx.cursor))]
    assert jobs == ["labeling_job"]  # within the cooldown: labels yes, retrain no
