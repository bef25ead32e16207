"""PostgreSQL as the production instance, against a real server the suite installs and starts (conftest):
Dagster's run/event/schedule storage, an Optuna study searched by two worker processes at once, the MLflow
registry, and the prediction log with its gap-free, commit-ordered ids."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from manga_intent.synthetic import generate_synthetic

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ROW = {
    "ts": 1.0,
    "request_id": "r",
    "text": "where is my order",
    "channel": "web",
    "intent": "order_tracking",
    "confidence": 0.9,
    "secondary_intent": None,
    "top": [],
    "probs": {"order_tracking": 0.9},
    "is_ood": False,
    "energy": -3.0,
    "route": "route",
    "model_version": "1",
    "latency_ms": 1.0,
}


def test_dagster_instance_on_postgres_from_the_shipped_dagster_yaml(postgres, tmp_path, monkeypatch):
    """deploy/postgres/dagster.yaml, as shipped: runs, events, sensor cursors and the run queue on PostgreSQL."""
    import psycopg2

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy/postgres/dagster.yaml").read_text())
    url = postgres.create_database("dagster")
    monkeypatch.setenv("MANGA_DAGSTER_PG_URL", url)
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

    @dg.asset
    def answer() -> int:
        return 42

    result = dg.materialize([answer], instance=instance)
    assert result.success
    assert instance.fetch_materializations(dg.AssetKey("answer"), limit=1).records
    with psycopg2.connect(url.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone()[0] == 1
    instance.dispose()


def test_two_optuna_workers_search_one_study_in_parallel(postgres, tmp_path, tiny_base_dir):
    import optuna

    storage = postgres.create_database("optuna")
    rows = generate_synthetic(300, seed=11)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "manga_intent.hpo_worker",
        "--storage",
        storage,
        "--study",
        "parallel",
        "--n-trials",
        "2",
        "--data",
        str(data),
        "--train-rows",
        "120",
        "--max-epochs",
        "2",
        "--base-model",
        str(tiny_base_dir),
        "--lr-scale",
        "50",
    ]
    workers = [
        subprocess.Popen(
            [*command, "--seed", str(seed)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    study = optuna.load_study(study_name="parallel", storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 4 and len({t.number for t in finished}) == 4
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both processes wrote trials to one study


def test_mlflow_registry_on_postgres(postgres, tmp_path):
    from resources.mlflow_registry import MlflowRegistry

    uri = postgres.create_database("mlflow")
    registry = MlflowRegistry(tracking_uri=uri, artifact_location=(tmp_path / "mlartifacts").as_uri())
    experiment = registry.ensure_experiment()
    client = registry.client()
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "val_accuracy", 0.9)
    version = registry.register_candidate(run.info.run_id, "file:///tmp/model", {"seed": "42"})
    registry.promote(version, {"accuracy": "0.93"})
    champion = MlflowRegistry(tracking_uri=uri).champion()  # a fresh client sees it: it is in the database
    assert str(champion.version) == version and champion.tags["gate"] == "passed"
    assert client.get_run(run.info.run_id).data.metrics["val_accuracy"] == 0.9


def test_prediction_log_on_postgres_is_gap_free_and_commit_ordered(postgres):
    from serving.pg_prediction_log import PostgresPredictionLog

    dsn = postgres.create_database("predictions")
    log = PostgresPredictionLog(dsn)
    assert log.read_since(0) == [] and log.max_id() == 0
    epoch = log.epoch()
    seen, errors, stop = [], [], threading.Event()

    def reader():
        last = 0
        while not stop.is_set() or last < 4 * 40 * 3:
            rows = log.read_since(last, limit=50)
            for row in rows:
                if row["id"] != last + 1:  # a gap, or a row that appeared behind the cursor
                    errors.append((last, row["id"]))
                last = row["id"]
                seen.append(row["id"])

    def writer(n):
        own = PostgresPredictionLog(dsn)
        for i in range(40):
            own.append([{**ROW, "request_id": f"{n}-{i}-{j}", "client": f"w{n}"} for j in range(3)])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join(timeout=60)
    assert errors == [] and seen == list(range(1, 481))
    assert log.max_id() == 480 and [r["id"] for r in log.read_recent(3)] == [478, 479, 480]
    assert {r["client"] for r in log.read_recent(480)} == {"w0", "w1", "w2", "w3"}
    new_epoch = log.reset()
    assert new_epoch != epoch and log.read_since(0) == []
    log.append([ROW])
    assert log.read_since(0)[0]["id"] == 1 and log.epoch() == new_epoch
