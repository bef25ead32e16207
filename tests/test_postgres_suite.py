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


def test_optuna_storage_opens_when_workers_race_on_a_fresh_database(postgres):
    """Four openers released together on an empty database: each gets a storage (schema creation races are
    retried), and the study they then share is one study."""
    import threading

    import optuna

    from manga_intent.hpo import open_storage

    url = postgres.create_database("optuna_race")
    barrier, results, errors = threading.Barrier(4), [], []

    def open_one() -> None:
        barrier.wait()
        try:
            storage = open_storage(url, log=lambda _m: None)
            results.append(optuna.create_study(study_name="raced", storage=storage, load_if_exists=True))
        except Exception as error:  # noqa: BLE001 - reported below with the others
            errors.append(repr(error))

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 4
    assert len({s._study_id for s in results}) == 1
    assert optuna.get_all_study_names(storage=url) == ["raced"]


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


def test_mlflow_registry_on_postgres(postgres, tmp_path, tokenizer):
    """The gate-v2 registry on PostgreSQL: a pyfunc version with its checksum, a compare-and-set alias move,
    a fresh client that sees the champion, a verified download, and a stale move refused."""
    from conftest import tiny_classifier

    from manga_intent.compiled import compile_classifier
    from manga_intent.taxonomy import INTENTS
    from resources.mlflow_registry import MlflowRegistry
    from serving.registry import GATE_TAG, PASSED, AliasMoved

    artifact = tmp_path / "compiled"
    compile_classifier(
        tiny_classifier("bert", len(INTENTS)).eval(),
        tokenizer,
        artifact,
        labels=INTENTS,
        temperature=1.0,
        ood_threshold=1e9,
        backend="onnx",
        max_length=64,
    )
    uri = postgres.create_database("mlflow")
    registry = MlflowRegistry(tracking_uri=uri, artifact_location=(tmp_path / "mlartifacts").as_uri())
    experiment = registry.ensure_experiment()
    client = registry.client()
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "val_accuracy", 0.9)
    version = registry.register_candidate(run.info.run_id, str(artifact), {"seed": "42"})
    models = registry.registry()
    models.move_alias(
        "champion", version, expected={"champion": None}, tags={GATE_TAG: PASSED, "accuracy": "0.93"}
    )
    champion = MlflowRegistry(tracking_uri=uri).champion()  # a fresh client sees it: it is in the database
    assert str(champion.version) == version and champion.tags[GATE_TAG] == PASSED
    assert client.get_run(run.info.run_id).data.metrics["val_accuracy"] == 0.9
    downloaded = models.compiled_dir(models.download(version, tmp_path / "download"))  # checksum verified
    assert (downloaded / "manifest.json").is_file()
    with pytest.raises(AliasMoved):  # compare-and-set: the champion is no longer "none"
        models.move_alias("champion", version, expected={"champion": None}, tags={})


def test_promotion_lock_on_postgres_serialises_two_registries(postgres):
    """Two registry clients (two processes' worth of connections) on one PostgreSQL database: the second
    compare-and-set waits until the first has left its lock, which shows as an advisory lock meanwhile."""
    import time

    import psycopg2

    from serving.registry import ModelRegistry

    uri = postgres.create_database("mlflow_lock")
    first, second = ModelRegistry(uri), ModelRegistry(uri)
    spans, inside = {}, threading.Event()

    def hold(name, registry, wait_for=None):
        if wait_for is not None:
            wait_for.wait(30)
        with registry.promotion_lock():
            start = time.monotonic()
            inside.set()
            time.sleep(1.0 if wait_for is None else 0.0)
            spans[name] = (start, time.monotonic())

    a = threading.Thread(target=hold, args=("a", first))
    b = threading.Thread(target=hold, args=("b", second, inside))
    a.start()
    inside.wait(30)
    with psycopg2.connect(uri.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert cur.fetchone()[0] == 1
    b.start()
    a.join(30)
    b.join(30)
    assert spans["b"][0] >= spans["a"][1]  # the second client waited for the first


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


def test_service_write_path_and_shadow_log_on_a_postgres_log_uri(postgres):
    """MANGA_PREDICTION_LOG=postgresql://...: the service's group-commit writer and its shadow log both land
    in that database (never in a SQLite file named after the URL)."""
    from serving.log_writer import PredictionLogSink, writer_for
    from serving.pg_prediction_log import PostgresPredictionLog
    from serving.shadow import PostgresShadowLog, open_shadow_log

    dsn = postgres.create_database("served")
    writer = writer_for(dsn)
    try:
        assert isinstance(writer.sink, PredictionLogSink)
        done = threading.Event()
        outcome = []
        writer.submit(
            [{**ROW, "request_id": "a", "client": "gw"}, {**ROW, "request_id": "b"}],
            lambda error: (outcome.append(error), done.set()),
        )
        assert done.wait(30) and outcome == [None]
    finally:
        writer.stop()
    rows = PostgresPredictionLog(dsn).read_since(0)
    assert [(r["id"], r["request_id"], r["client"]) for r in rows] == [(1, "a", "gw"), (2, "b", None)]

    shadow = open_shadow_log(dsn)
    assert isinstance(shadow, PostgresShadowLog)
    row = {
        "ts": 5.0,
        "request_id": "a",
        "text": "where is my order",
        "channel": "web",
        "champion_version": "1",
        "champion_intent": "order_tracking",
        "champion_confidence": 0.9,
        "champion_is_ood": False,
        "champion_latency_ms": 4.0,
        "challenger_version": "2",
        "challenger_intent": "order_tracking",
        "challenger_confidence": 0.8,
        "challenger_is_ood": True,
        "challenger_latency_ms": 6.0,
        "over_budget": False,
    }
    shadow.append([row, {**row, "request_id": "b", "ts": 9.0}, {**row, "challenger_version": "3"}])
    assert [r["request_id"] for r in open_shadow_log(dsn).read("2", since_ts=6.0)] == ["b"]
    read = shadow.read("2")
    assert len(read) == 2 and read[0]["challenger_is_ood"] is True and read[0]["over_budget"] is False
    assert len(PostgresPredictionLog(dsn).read_since(0)) == 2  # the shadow table is not the log
    assert read[0]["champion_shadow_latency_ms"] is None  # a row appended without the champion's timing

    # a shadow table created before the champion's latency control gains the column, keeping its rows
    import psycopg2

    with psycopg2.connect(dsn.replace("+psycopg2", "", 1)) as conn, conn.cursor() as cur:
        cur.execute(  # the DDL as it was
            "CREATE TABLE shadow_before (id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, "
            "request_id TEXT NOT NULL, text TEXT NOT NULL, channel TEXT NOT NULL, "
            "champion_version TEXT NOT NULL, champion_intent TEXT NOT NULL, "
            "champion_confidence DOUBLE PRECISION NOT NULL, champion_is_ood INTEGER NOT NULL, "
            "champion_latency_ms DOUBLE PRECISION NOT NULL, challenger_version TEXT NOT NULL, "
            "challenger_intent TEXT NOT NULL, challenger_confidence DOUBLE PRECISION NOT NULL, "
            "challenger_is_ood INTEGER NOT NULL, challenger_latency_ms DOUBLE PRECISION NOT NULL, "
            "over_budget INTEGER NOT NULL)"
        )
        cur.execute(
            "INSERT INTO shadow_before (ts, request_id, text, channel, champion_version, champion_intent, "
            "champion_confidence, champion_is_ood, champion_latency_ms, challenger_version, challenger_intent, "
            "challenger_confidence, challenger_is_ood, challenger_latency_ms, over_budget) "
            "VALUES (1, 'old', 't', 'web', '1', 'faq', 0.9, 0, 3, '2', 'faq', 0.8, 0, 5, 0)"
        )
    conn.close()
    before = PostgresShadowLog(dsn, table="shadow_before")
    before.append([{**row, "request_id": "new", "champion_shadow_latency_ms": 4.5}])
    assert [(r["request_id"], r["champion_shadow_latency_ms"]) for r in before.read("2")] == [
        ("old", None),
        ("new", 4.5),
    ]
    # opened again (any case: PostgreSQL folds unquoted names), the column is found and left alone
    assert len(PostgresShadowLog(dsn, table="Shadow_Before").read("2")) == 2
