"""The registry for real (MLflow on SQLite): pyfunc versions, loud reads, compare-and-set, trusted serving."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_classifier
from fastapi.testclient import TestClient

from manga_intent.compiled import CompiledClassifier, compile_classifier
from manga_intent.taxonomy import INTENTS
from serving.app import ChampionModel, ModelHolder, create_app
from serving.prediction_log import SqlitePredictionLog
from serving.registry import (
    CHECKSUM_TAG,
    GATE_TAG,
    PASSED,
    SERVING_GRAPH_TAG,
    AliasMoved,
    ModelRegistry,
    RegistryError,
    UntrustedVersion,
)

NAME = "manga-intent-classifier"


def compiled(path: Path, tokenizer, seed: int = 0) -> Path:
    compile_classifier(
        tiny_classifier("bert", len(INTENTS), seed=seed).eval(),
        tokenizer,
        path,
        labels=INTENTS,
        temperature=0.5,
        ood_threshold=1e9,
        backend="onnx",
        max_length=64,
    )
    return path


@pytest.fixture
def registry(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", NAME)
    client = registry.client()
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "mlartifacts").as_uri())
    registry.run_id = client.create_run(experiment).info.run_id
    return registry


def register(registry, tmp_path, tokenizer, seed=0, **tags) -> str:
    artifact = compiled(tmp_path / f"compiled-{seed}-{len(tags)}", tokenizer, seed)
    return registry.register_candidate(registry.run_id, artifact, {"seed": str(seed), **tags})


NO_ALIASES = {"champion": None, "challenger": None}

LOAD_AND_PREDICT = """
import json, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/manga-intent-classifier@champion")
out = model.predict(["where is my order?", "any isekai like Frieren?"])
print(json.dumps({
    "predictions": [p.model_dump() for p in out],
    "inputs": str(model.metadata.get_input_schema()),
    "has_example": model.metadata.saved_input_example_info is not None,
    "dagster_imported": "dagster" in sys.modules,
}))
"""


def test_a_version_is_an_mlflow_pyfunc_loadable_with_only_mlflow_and_the_project(
    registry, tmp_path, tokenizer
):
    version = register(registry, tmp_path, tokenizer, seed=3, data_version="sha256:abc")
    tags = registry.version_tags(version)
    assert tags[GATE_TAG] == "pending" and tags[CHECKSUM_TAG].startswith("sha256:") and tags["seed"] == "3"
    registry.move_alias("champion", version, expected=NO_ALIASES, tags={GATE_TAG: PASSED})
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, registry.tracking_uri],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the repo: the model must not depend on the working directory
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["dagster_imported"] and result["has_example"] and "string" in result["inputs"]
    expected = CompiledClassifier(tmp_path / "compiled-3-1").classify(["where is my order?"], top_k=3)[0]
    first = result["predictions"][0]
    assert first["intent"] == expected.intent in INTENTS
    assert first["confidence"] == pytest.approx(expected.confidence, abs=1e-5)  # calibrated (T = 0.5)
    assert len(first["top"]) == 3 and {"is_ood", "energy"} <= set(first)


def test_a_missing_alias_is_none_and_any_other_registry_error_raises(
    registry, tmp_path, tokenizer, monkeypatch
):
    assert registry.champion() is None  # no registered model yet
    register(registry, tmp_path, tokenizer)
    assert registry.champion() is None and registry.challenger() is None  # model, no alias
    from mlflow.exceptions import MlflowException

    def locked(*args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) database is locked")

    monkeypatch.setattr(registry.client(), "get_model_version_by_alias", locked)
    with pytest.raises(MlflowException, match="database is locked"):
        registry.champion()


def test_alias_moves_are_compare_and_set(registry, tmp_path, tokenizer):
    v1, v2 = register(registry, tmp_path, tokenizer, 1), register(registry, tmp_path, tokenizer, 2)
    registry.move_alias("champion", v1, expected=NO_ALIASES, tags={GATE_TAG: PASSED})
    # a run that read "no champion" before v1 was promoted must not promote over it
    with pytest.raises(AliasMoved, match="champion moved during evaluation: none when it started, v1 now"):
        registry.move_alias("champion", v2, expected=NO_ALIASES, tags={GATE_TAG: PASSED})
    assert registry.alias_versions() == {"champion": v1, "challenger": None}
    assert registry.version_tags(v2)[GATE_TAG] == "pending"  # nothing was written
    registry.move_alias(
        "challenger", v2, expected={"champion": v1, "challenger": None}, tags={GATE_TAG: PASSED}
    )
    assert registry.alias_versions() == {"champion": v1, "challenger": v2}


def _logged_file(tmp_path: Path, name: str) -> Path:
    return next(p for p in (tmp_path / "mlartifacts").rglob(name) if "compiled" in p.parts)


def test_download_verifies_the_registered_checksum(registry, tmp_path, tokenizer):
    version = register(registry, tmp_path, tokenizer)
    assert (registry.compiled_dir(registry.download(version, tmp_path / "ok")) / "manifest.json").is_file()
    manifest = _logged_file(tmp_path, "manifest.json")
    manifest.write_text(manifest.read_text().replace('"temperature": 0.5', '"temperature": 0.05'))
    with pytest.raises(UntrustedVersion, match="does not match the registered"):
        registry.download(version, tmp_path / "tampered")


def test_the_service_serves_only_passed_versions_whose_artifact_matches(registry, tmp_path, tokenizer):
    good = register(registry, tmp_path, tokenizer, 1)
    registry.move_alias("champion", good, expected=NO_ALIASES, tags={GATE_TAG: PASSED})
    holder = ModelHolder(ChampionModel(registry, cache_dir=tmp_path / "cache"), reload_seconds=3600)
    client = TestClient(create_app(holder, SqlitePredictionLog(tmp_path / "log.sqlite")))
    assert holder.refresh() and holder.version == good

    def health():
        return client.get("/healthz").json()

    # the alias moves to a version the gate rejected: keep serving, say why
    rejected = register(registry, tmp_path, tokenizer, 2)
    registry.set_tags(rejected, {GATE_TAG: "rejected"})
    registry.client().set_registered_model_alias(NAME, "champion", rejected)
    assert not holder.refresh() and holder.version == good
    assert f"version {rejected} has gate='rejected'" in health()["refused_versions"]["champion"]
    assert client.post("/v1/classify", json={"text": "hi"}).json()["model_version"] == good

    # passed, but its artifact no longer matches the registered checksum
    tampered = register(registry, tmp_path, tokenizer, 3, note="x")
    registry.set_tags(tampered, {GATE_TAG: PASSED})
    registry.client().set_registered_model_alias(NAME, "champion", tampered)
    tokenizer_files = sorted((tmp_path / "mlartifacts").rglob("tokenizer_config.json"))
    newest = max(tokenizer_files, key=lambda p: p.stat().st_mtime)
    newest.write_text(newest.read_text() + " ")
    assert not holder.refresh() and holder.version == good
    assert "does not match the registered" in health()["refused_versions"]["champion"]

    # a passed, intact version is picked up and the refusal clears
    fresh = register(registry, tmp_path, tokenizer, 4)
    registry.set_tags(fresh, {GATE_TAG: PASSED})
    registry.client().set_registered_model_alias(NAME, "champion", fresh)
    assert holder.refresh() and holder.version == fresh and health()["refused_versions"] == {}


def test_load_pyfunc_runs_the_gated_graph_and_refuses_a_pyfunc_that_cannot_choose_one(
    registry, tmp_path, tokenizer, monkeypatch
):
    """`load_pyfunc` is the checked way to load a champion as a pyfunc: not before the gate passed it, in
    the graph the gate named; a version whose pyfunc was saved without the `graph` config key (MLflow then
    ignores the override) is refused rather than run in a graph the gate did not pass."""
    import mlflow.pyfunc

    version = register(registry, tmp_path, tokenizer, seed=4)
    with pytest.raises(RegistryError, match="no 'champion' alias"):
        registry.load_pyfunc()
    registry.move_alias(
        "champion", version, expected=NO_ALIASES, tags={GATE_TAG: PASSED, SERVING_GRAPH_TAG: "fp32"}
    )
    model = registry.load_pyfunc(dst=tmp_path / "pyfunc")
    assert model.unwrap_python_model().graph == "fp32"
    assert model.predict(["where is my order?"])[0].intent in INTENTS

    real_save = mlflow.pyfunc.save_model
    monkeypatch.setattr(mlflow.pyfunc, "save_model", lambda *a, model_config=None, **k: real_save(*a, **k))
    old = register(registry, tmp_path, tokenizer, seed=5)  # as registered before graph selection existed
    registry.move_alias(
        "champion",
        old,
        expected={"champion": version, "challenger": None},
        tags={GATE_TAG: PASSED, SERVING_GRAPH_TAG: "int8"},
    )
    with pytest.raises(RegistryError, match="predates graph selection and runs fp32"):
        registry.load_pyfunc()
