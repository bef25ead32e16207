"""The inference service: answers, routing, the prediction log, bad input, hot model swaps."""

import pytest
from conftest import tiny_classifier
from fastapi.testclient import TestClient

from manga_intent.compiled import compile_classifier
from manga_intent.taxonomy import INTENTS
from serving.app import FixedModel, ModelHolder, ServiceSettings, create_app
from serving.prediction_log import SqlitePredictionLog


def compiled_dir(path, tokenizer, seed=0, threshold=1e9):
    model = tiny_classifier("bert", len(INTENTS), seed=seed).eval()
    compile_classifier(
        model,
        tokenizer,
        path,
        labels=INTENTS,
        temperature=0.05,
        ood_threshold=threshold,
        backend="onnx",
        max_length=64,
    )
    return path


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tokenizer):
    return compiled_dir(tmp_path_factory.mktemp("compiled"), tokenizer)


@pytest.fixture
def service(artifact, tmp_path):
    log = SqlitePredictionLog(tmp_path / "log.sqlite")
    holder = ModelHolder(FixedModel(artifact, "v-test"), reload_seconds=3600)
    holder.refresh()
    settings = ServiceSettings(max_text_chars=200, max_body_bytes=4096, max_batch=5)
    return TestClient(create_app(holder, log, settings)), log


def test_classify_answers_and_logs(service):
    client, log = service
    reply = client.post("/v1/classify", json={"text": "where is my order #1234?", "channel": "mobile"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["intent"] in INTENTS and 0 < body["confidence"] <= 1
    assert body["model_version"] == "v-test" and body["route"] in ("route", "clarify", "fallback")
    assert len(body["top2"]) == 2 and body["top2"][0]["intent"] == body["intent"]
    assert (body["route"] == "clarify") == (body["confidence"] < 0.6)
    assert body["latency_ms"] > 0 and body["is_ood"] is False
    rows = log.read_since(0)
    assert len(rows) == 1 and rows[0]["text"] == "where is my order #1234?" and rows[0]["channel"] == "mobile"
    assert rows[0]["request_id"] == body["request_id"]
    assert set(rows[0]["probs"]) == set(INTENTS) and abs(sum(rows[0]["probs"].values()) - 1) < 1e-3
    assert client.get("/healthz").json()["model_version"] == "v-test"


def test_secondary_intent_when_runner_up_clears_threshold(service):
    client, _ = service
    body = client.post("/v1/classify", json={"text": "return this and recommend something better"}).json()
    runner_up = body["top2"][1]
    assert (body["secondary_intent"] == runner_up["intent"]) == (runner_up["confidence"] >= 0.25)


def test_batch_endpoint(service):
    client, log = service
    reply = client.post(
        "/v1/classify/batch", json={"messages": [{"text": "hi"}, {"text": "any isekai?", "channel": "voice"}]}
    )
    assert reply.status_code == 200 and len(reply.json()["results"]) == 2
    assert [r["channel"] for r in log.read_since(0)] == ["web", "voice"]


BAD_REQUESTS = [
    ("missing text", {"json": {"channel": "web"}}, 422, "text: Field required"),
    ("empty text", {"json": {"text": "   "}}, 422, "text is empty"),
    ("non-string text", {"json": {"text": 42}}, 422, "text: Input should be a valid string"),
    ("null text", {"json": {"text": None}}, 422, "text"),
    ("bad channel", {"json": {"text": "hi", "channel": "fax"}}, 422, "channel"),
    ("too long", {"json": {"text": "a" * 201}}, 422, "201 characters; the limit is 200"),
    (
        "invalid json",
        {"content": b'{"text": "hi"', "headers": {"content-type": "application/json"}},
        422,
        "JSON",
    ),
    (
        "invalid utf-8",
        {"content": b'{"text": "\xff\xfe"}', "headers": {"content-type": "application/json"}},
        400,
        "not valid UTF-8 JSON",
    ),
    ("array body", {"json": ["hi"]}, 422, ""),
    ("oversized body", {"json": {"text": "x" * 5000}}, 413, "exceeds 4096 bytes"),
]


@pytest.mark.parametrize("name,kwargs,status,message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_gets_a_clear_4xx_and_no_log_row(service, name, kwargs, status, message):
    client, log = service
    reply = client.post("/v1/classify", **kwargs)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["detail"]
    assert log.read_since(0) == []
    assert client.post("/v1/classify", json={"text": "still alive?"}).status_code == 200  # worker survives


def test_streamed_oversized_body_is_rejected(service):
    client, log = service

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    reply = client.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and log.read_since(0) == []


def test_batch_validation_is_all_or_nothing(service):
    client, log = service
    reply = client.post("/v1/classify/batch", json={"messages": [{"text": "fine"}, {"text": ""}]})
    assert reply.status_code == 422 and "messages.1.text: text is empty" in reply.json()["detail"]
    assert client.post("/v1/classify/batch", json={"messages": [{"text": "x"}] * 6}).status_code == 422
    assert client.post("/v1/classify/batch", json={"messages": []}).status_code == 422
    assert log.read_since(0) == []


def test_failed_log_write_leaves_no_half_row(artifact, tmp_path):
    class FailingLog(SqlitePredictionLog):
        def append(self, rows):
            raise OSError("disk full")

    holder = ModelHolder(FixedModel(artifact), 3600)
    holder.refresh()
    client = TestClient(create_app(holder, FailingLog(tmp_path / "l.sqlite")), raise_server_exceptions=False)
    assert client.post("/v1/classify", json={"text": "hello"}).status_code == 500
    assert SqlitePredictionLog(tmp_path / "l.sqlite").read_since(0) == []


def test_ood_messages_fall_back(tmp_path, tokenizer):
    artifact = compiled_dir(tmp_path / "ood", tokenizer, threshold=-1e9)  # everything is out of scope
    holder = ModelHolder(FixedModel(artifact), 3600)
    holder.refresh()
    client = TestClient(create_app(holder, SqlitePredictionLog(tmp_path / "l.sqlite")))
    body = client.post("/v1/classify", json={"text": "what's the weather in paris"}).json()
    assert body["is_ood"] is True and body["route"] == "fallback"


def test_holder_swaps_models_without_restart(tmp_path, tokenizer):
    first, second = compiled_dir(tmp_path / "a", tokenizer, 1), compiled_dir(tmp_path / "b", tokenizer, 2)

    class Switchable:
        def __init__(self):
            self.value = ("1", first)

        def current(self):
            return self.value

    source = Switchable()
    holder = ModelHolder(source, 3600)
    holder.refresh()
    client = TestClient(create_app(holder, SqlitePredictionLog(tmp_path / "l.sqlite")))
    assert client.post("/v1/classify", json={"text": "hi"}).json()["model_version"] == "1"
    source.value = ("2", second)
    assert holder.refresh()
    assert client.post("/v1/classify", json={"text": "hi"}).json()["model_version"] == "2"
    source.value = None  # e.g. the registry lost its alias: keep serving what we have
    assert not holder.refresh() and holder.version == "2"


def test_no_model_yet_is_503(tmp_path):
    class Empty:
        def current(self):
            return None

    holder = ModelHolder(Empty(), 3600)
    holder.refresh()
    client = TestClient(create_app(holder, SqlitePredictionLog(tmp_path / "l.sqlite")))
    assert client.post("/v1/classify", json={"text": "hi"}).status_code == 503
    assert client.get("/healthz").json()["status"] == "no_model"


def test_the_artifacts_policy_routes_and_the_reply_names_the_detector(tmp_path, tokenizer):
    """With a serving calibration in the artifact, routing is its fitted policy, and the reply says which
    detector decided `is_ood` (the prediction log keeps its columns)."""
    from manga_intent.calibrator_fit import fit_serving_calibration
    from manga_intent.data import Example

    model = tiny_classifier("bert", len(INTENTS), seed=1).eval()
    rows = [
        Example(f"{intent.replace('_', ' ')} question number {i}", intent)
        for intent in INTENTS
        for i in range(3)
    ]
    fitted = fit_serving_calibration(
        model,
        tokenizer,
        INTENTS,
        train=rows,
        val=rows,
        ood_val_texts=["book a flight", "weather tomorrow", "qwerty zxcv"],
        max_length=64,
    )
    compile_classifier(
        model, tokenizer, tmp_path / "a", labels=INTENTS, calibration=fitted, backend="onnx", max_length=64
    )
    holder = ModelHolder(FixedModel(tmp_path / "a", "v-ood"), reload_seconds=3600)
    holder.refresh()
    log = SqlitePredictionLog(tmp_path / "log.sqlite")
    client = TestClient(create_app(holder, log, ServiceSettings()))
    texts = ["where is my order", "book a flight to rome", "zzzz qqqq"]
    bodies = [client.post("/v1/classify", json={"text": t}).json() for t in texts]
    expected = holder.model.classify(texts)
    for body, prediction in zip(bodies, expected):
        assert body["ood_detector"] == fitted.detector.kind
        assert body["route"] == prediction.route and body["is_ood"] == (prediction.route == "fallback")
        assert body["ood_score"] == pytest.approx(prediction.ood_score, abs=1e-5)
    assert [r["route"] for r in log.read_since(0)] == [b["route"] for b in bodies]
