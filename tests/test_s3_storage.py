"""Artifact storage and the dataset source against a real S3-compatible server (moto in server mode)."""

import json
import socket
import subprocess
import sys
import time

import boto3
import dagster as dg
import pytest
from conftest import exported_human_labels, free_port
from dagster_aws.s3 import S3Resource

from manga_assets.intent_dataset import intent_dataset
from manga_assets.seed_corpus import seed_corpus
from resources.storage import S3ArtifactStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"moto server did not start: {log.read_text()}")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    resource = S3Resource(endpoint_url=s3_server, region_name="us-east-1")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket="manga-ml")
    return resource, client


def test_artifact_round_trip_through_s3(s3, tmp_path):
    resource, client = s3
    store = S3ArtifactStore(s3=resource, bucket="manga-ml", prefix="artifacts")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"a": 1}')
    (model / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 100)
    uri = store.put_dir(model, "models/run1/seed=42")
    assert uri == "s3://manga-ml/artifacts/models/run1/seed=42"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="manga-ml")["Contents"]}
    assert keys == {
        "artifacts/models/run1/seed=42/config.json",
        "artifacts/models/run1/seed=42/sub/weights.bin",
    }
    back = store.get_dir(uri, tmp_path / "back")
    assert (back / "sub" / "weights.bin").read_bytes() == bytes(range(256)) * 100
    assert json.loads((back / "config.json").read_text()) == {"a": 1}
    json_uri = store.put_json({"temperature": 0.7}, "calibration/42.json")
    assert store.get_json(json_uri) == {"temperature": 0.7}
    with pytest.raises(FileNotFoundError):
        store.get_dir("s3://manga-ml/artifacts/models/missing", tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        store.get_file("s3://manga-ml/artifacts/nothing.json", tmp_path / "y")
    with pytest.raises(ValueError, match="not in bucket"):
        store.key_of("s3://other-bucket/artifacts/a")


def test_intent_dataset_reads_s3_source_and_writes_snapshot_to_s3(s3, tmp_path, monkeypatch):
    resource, client = s3
    monkeypatch.setenv("MANGA_HOME", str(tmp_path / "home"))
    rows = [{"text": f"where is my order {i}", "label": "order_tracking"} for i in range(5)]
    rows += [{"text": f"any isekai like frieren {i}", "label": "recommendation"} for i in range(5)]
    client.put_object(
        Bucket="manga-ml", Key="raw/part-1.jsonl", Body="\n".join(json.dumps(r) for r in rows[:5])
    )
    client.put_object(
        Bucket="manga-ml",
        Key="raw/part-2.jsonl",
        Body="\n".join(json.dumps(r) for r in rows[5:]) + '\n{"text": "x", "label": "shipping"}\n',
    )
    client.put_object(
        Bucket="manga-ml",
        Key="targeted/escalation.jsonl",
        Body='{"text": "put me through to a person", "label": "escalation"}\n',
    )
    store = S3ArtifactStore(s3=resource, bucket="manga-ml", prefix="artifacts")
    result = dg.materialize(
        [exported_human_labels(), seed_corpus, intent_dataset],
        resources={"artifact_store": store, "s3": resource},
        run_config={
            "ops": {
                "seed_corpus": {
                    "config": {"source_uri": "s3://manga-ml/raw/", "targeted_uri": "s3://manga-ml/targeted/"}
                }
            }
        },
    )
    assert result.success
    metadata = result.asset_materializations_for_node("seed_corpus")[0].metadata
    assert metadata["rows"].value == 10 + 1 and metadata["quarantined_rows"].value == 1
    assert metadata["targeted_rows"].value == 1
    assert metadata["source_files"].value == ["0000_part-1.jsonl", "0001_part-2.jsonl"]
    manifest = result.output_for_node("intent_dataset")
    assert manifest.uri.startswith("s3://manga-ml/artifacts/datasets/intent_dataset/")
    snapshot = store.get_file(manifest.uri, tmp_path / "snap.jsonl").read_text().splitlines()
    assert len(snapshot) == 10 + 1


def test_parquet_prediction_log_on_s3(s3):
    from serving.prediction_log import S3ParquetPredictionLog

    _, client = s3
    log = S3ParquetPredictionLog(client, "manga-ml", "prediction-log")
    row = {
        "ts": 1.0,
        "request_id": "r",
        "text": "where is my order",
        "channel": "web",
        "intent": "order_tracking",
        "confidence": 0.9,
        "secondary_intent": None,
        "top": [{"intent": "order_tracking", "confidence": 0.9}],
        "probs": {"order_tracking": 0.9, "faq": 0.1},
        "is_ood": False,
        "energy": -3.0,
        "route": "route",
        "model_version": "1",
        "latency_ms": 4.2,
    }
    assert log.max_id() == 0 and log.read_since(0) == []
    log.append([row, {**row, "text": "hello", "intent": "chitchat"}])
    log.append([{**row, "text": "refund please", "intent": "return_request", "is_ood": True}])
    rows = log.read_since(0)
    assert [r["text"] for r in rows] == ["where is my order", "hello", "refund please"]
    assert rows[0]["probs"] == {"order_tracking": 0.9, "faq": 0.1} and rows[2]["is_ood"] is True
    assert [r["text"] for r in log.read_since(rows[1]["id"])] == ["refund please"]
    assert log.max_id() == rows[-1]["id"]
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket="manga-ml", Prefix="prediction-log/parts/")["Contents"]
    ]
    assert len(keys) == 2 and all(k.endswith(".parquet") for k in keys)  # one part per append (batch_rows=1)
    assert log.epoch() and [r["text"] for r in log.read_recent(2)] == ["hello", "refund please"]


def test_two_s3_writers_one_delayed_never_put_ids_behind_a_reader(s3):
    """Replica A picks a part number and stalls; replica B writes three parts; a reader moves past them.
    A's put then loses the race for its number (conditional put) and lands AFTER B's parts."""
    import threading

    from serving.prediction_log import S3ParquetPredictionLog

    _, client = s3
    row = {
        "ts": 1.0,
        "request_id": "r",
        "text": "t",
        "channel": "web",
        "intent": "faq",
        "confidence": 0.9,
        "secondary_intent": None,
        "top": [],
        "probs": {"faq": 0.9},
        "is_ood": False,
        "energy": -3.0,
        "route": "route",
        "model_version": "1",
        "latency_ms": 1.0,
    }
    chosen, release = threading.Event(), threading.Event()

    def stall(part):
        if not chosen.is_set():
            chosen.set()
            release.wait(30)

    delayed = S3ParquetPredictionLog(client, "manga-ml", "two-writers", batch_rows=2, before_put=stall)
    fast = S3ParquetPredictionLog(client, "manga-ml", "two-writers", batch_rows=2)
    reader = S3ParquetPredictionLog(client, "manga-ml", "two-writers")
    thread = threading.Thread(target=delayed.append, args=([{**row, "text": "A1"}, {**row, "text": "A2"}],))
    thread.start()
    assert chosen.wait(30)
    for i in range(3):
        fast.append([{**row, "text": f"B{i}a"}, {**row, "text": f"B{i}b"}])
    seen = reader.read_since(0)
    cursor = seen[-1]["id"]
    release.set()
    thread.join(30)
    late = reader.read_since(cursor)
    assert [r["text"] for r in late] == ["A1", "A2"] and min(r["id"] for r in late) > cursor
    ids = [r["id"] for r in reader.read_since(0)]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 8
    assert delayed.parts_written == [4] and fast.parts_written == [1, 2, 3]


def test_shadow_log_on_s3_sits_beside_the_prediction_log(s3):
    from serving.prediction_log import S3ParquetPredictionLog
    from serving.shadow import S3ParquetShadowLog

    _, client = s3
    shadow = S3ParquetShadowLog(client, "manga-ml", "served")
    row = {
        "ts": 5.0,
        "request_id": "r1",
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
        "challenger_is_ood": False,
        "challenger_latency_ms": 6.0,
        "over_budget": False,
    }
    shadow.append([row, {**row, "request_id": "r2", "ts": 9.0, "challenger_is_ood": True}])
    shadow.append([{**row, "request_id": "r3", "challenger_version": "3"}])
    assert [r["request_id"] for r in shadow.read("2")] == ["r1", "r2"]
    assert [r["request_id"] for r in shadow.read("2", since_ts=6.0)] == ["r2"]
    assert shadow.read("2")[1]["challenger_is_ood"] is True and len(shadow.read("3")) == 1
    assert S3ParquetPredictionLog(client, "manga-ml", "served").read_since(0) == []  # not mixed into the log
