"""`decision_tree_sensor` itself: each leaf's scenario, fed through the sensor's real inputs, makes it request
exactly that leaf's job — and the next tick, with the cursor it left, requests nothing.

The inputs are the ones production has: a champion version in a real MLflow registry (SQLite) with a compiled
tiny model and its `monitoring_baseline` tag; an `audit_labels` materialization whose manifest points at the
audited rows in the artifact store; the prediction log (latency and predicted intents of the newest full
window); a `calibrator_refit` materialization for the refit-outcome branch. Each request is validated against
the job it names in the project's Definitions, so the daemon could launch it as it stands.
"""

import json
import random

import dagster as dg
import pytest
from test_decision_tree import BASELINE, audited

from manga_assets.definitions import defs
from manga_assets.manifests import AuditExport
from manga_assets.monitoring_actions import BASELINE_TAG
from manga_intent.compiled import CompiledClassifier, compile_classifier
from manga_intent.decision_tree import LEAVES
from manga_intent.remedies import tokenizer_fingerprint
from manga_intent.taxonomy import INTENTS, SEED_TRAFFIC_SHARES
from resources.mlflow_registry import MlflowRegistry
from resources.monitoring_settings import MonitoringSettings
from resources.prediction_log import SqlitePredictionLogResource
from resources.storage import LocalArtifactStore
from sensors.decision_tree import decision_tree_sensor
from serving.prediction_log import SqlitePredictionLog
from serving.registry import GATE_TAG, PASSED
from serving.simulator import SCENARIOS

WINDOW = 500
SALE = SCENARIOS["seasonal_sale"].intent_shares


@pytest.fixture(scope="module")
def champion(tmp_path_factory, tokenizer):
    """A tiny compiled model registered and crowned in a real MLflow registry; its tokenizer fingerprint."""
    from conftest import tiny_classifier

    root = tmp_path_factory.mktemp("tree-sensor")
    artifact = root / "compiled"
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
    registry = MlflowRegistry(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=(root / "mlartifacts").as_uri()
    )
    experiment = registry.ensure_experiment()
    run_id = registry.client().create_run(experiment).info.run_id
    models = registry.registry()
    version = models.register_candidate(run_id, artifact, {"seed": "42"})
    models.move_alias(
        "champion", version, expected={"champion": None, "challenger": None}, tags={GATE_TAG: PASSED}
    )
    return registry, version, tokenizer_fingerprint(CompiledClassifier(artifact).tokenizer)


def set_baseline(registry, version, fingerprint):
    baseline = {
        "model_version": version,
        "val_predicted_shares": dict(SEED_TRAFFIC_SHARES),
        "accuracy": BASELINE.accuracy,
        "segment_accuracy": dict(BASELINE.segment_accuracy),
        "ece": BASELINE.ece,
        "ood_precision": BASELINE.ood_precision,
        "multi_intent_recall": BASELINE.multi_intent_recall,
        "p95_latency_ms": 8.0,
        "p95_batched_latency_ms": 3.0,
        "tokenizer_fingerprint": fingerprint,
    }
    registry.registry().set_tags(version, {BASELINE_TAG: json.dumps(baseline)})


def window_rows(shares, single_ms=8.0, batched_ms=3.0, seed=0):
    """A full window with exact intent quotas: 400 single-message requests and ten batches of ten."""
    rng = random.Random(seed)
    intents = [i for i, s in shares.items() for _ in range(round(s * WINDOW))]
    intents = (intents + rng.choices(list(shares), k=WINDOW))[:WINDOW]
    rng.shuffle(intents)
    rows = []
    for n, intent in enumerate(intents):
        batch = n >= 400
        rows.append(
            {
                "ts": 1000.0 + (400 + (n - 400) // 10 if batch else n),
                "request_id": f"r{n}",
                "text": f"message {n}",
                "channel": "web",
                "intent": intent,
                "confidence": 0.9,
                "secondary_intent": None,
                "top": [],
                "probs": {intent: 0.9},
                "is_ood": False,
                "energy": -5.0,
                "route": "route",
                "model_version": "1",
                "latency_ms": batched_ms if batch else single_ms,
                "client": f"batcher-{(n - 400) // 10}" if batch else f"user-{n}",
            }
        )
    return rows


#: leaf → (audit rows, log window, calibrator refit recovered?, baseline fingerprint differs?)
SCENARIOS_BY_LEAF = {
    "C→I": (dict(acc_en=0.86, acc_jp=0.79), dict(shares=SALE), None, False),
    "C→J": (dict(acc_en=0.86, acc_jp=0.79), dict(shares=SEED_TRAFFIC_SHARES), None, False),
    "D→O": (dict(acc_jp=0.72), dict(shares=SEED_TRAFFIC_SHARES), None, False),
    "E→K": (dict(overconfident=True), dict(shares=SEED_TRAFFIC_SHARES), None, False),
    "E→I": (dict(), dict(shares=SEED_TRAFFIC_SHARES), False, False),
    "F→M": (dict(), dict(shares=SEED_TRAFFIC_SHARES, single_ms=11.0), None, False),
    "F→L": (dict(), dict(shares=SEED_TRAFFIC_SHARES, single_ms=11.0), None, True),
    "F→N": (dict(), dict(shares=SEED_TRAFFIC_SHARES, single_ms=8.2, batched_ms=6.0), None, False),
    "G→P": (dict(ood_precision=0.75), dict(shares=SEED_TRAFFIC_SHARES), None, False),
    "H→Q": (dict(pair_recall=0.6), dict(shares=SEED_TRAFFIC_SHARES), None, False),
    None: (dict(), dict(shares=SEED_TRAFFIC_SHARES), None, False),
}


def evaluate(tmp_path, champion, leaf, monkeypatch):
    """Build the leaf's scenario in fresh stores; tick the sensor twice (the second with the first's cursor)."""
    registry, version, fingerprint = champion
    audit_kwargs, log_kwargs, refit_recovered, stale_tokenizer = SCENARIOS_BY_LEAF[leaf]
    monkeypatch.setenv("MANGA_HOME", str(tmp_path / "home"))
    set_baseline(registry, version, "fingerprint-of-another-tokenizer" if stale_tokenizer else fingerprint)
    store = LocalArtifactStore(root=str(tmp_path / "artifacts"))
    items = [{**row, "model_version": version} for row in audited(**audit_kwargs)]
    audit_file = tmp_path / "audit.jsonl"
    audit_file.write_text("".join(json.dumps(i) + "\n" for i in items))
    uri = store.put_file(audit_file, "audit_labels/upto-1.jsonl")
    instance = dg.DagsterInstance.ephemeral()
    manifest = AuditExport(uri=uri, labels=len(items), max_annotation_id=1)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "audit_labels", metadata={"manifest": dg.MetadataValue.json(manifest.as_dict())}
        )
    )
    if refit_recovered is not None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "calibrator_refit", metadata={"model_version": str(version), "recovered": refit_recovered}
            )
        )
    log_path = tmp_path / "log.sqlite"
    SqlitePredictionLog(log_path).append(window_rows(**log_kwargs))
    resources = {
        "prediction_log": SqlitePredictionLogResource(path=str(log_path)),
        "mlflow_registry": registry,
        "monitoring": MonitoringSettings(window=WINDOW),
        "artifact_store": store,
    }
    first = dg.build_sensor_context(instance=instance, resources=resources)
    result = decision_tree_sensor(first)
    second = dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
    return result, decision_tree_sensor(second)


#: what the report's table is printed from (leaf, trigger, action, run requested)
TABLE: list[dict] = []


@pytest.mark.parametrize(
    "leaf", [leaf for leaf in SCENARIOS_BY_LEAF if leaf], ids=lambda s: s.replace("→", "-")
)
def test_each_leaf_scenario_makes_the_sensor_request_that_leafs_job_only(
    tmp_path, champion, leaf, monkeypatch
):
    result, again = evaluate(tmp_path, champion, leaf, monkeypatch)
    requests = result if isinstance(result, list) else []
    assert [r.tags["leaf"] for r in requests] == [leaf], getattr(result, "skip_message", result)
    request = requests[0]
    action, job = LEAVES[leaf]
    assert request.job_name == job and request.tags["action"] == action
    assert request.run_key.startswith(f"tree:{leaf}:")
    # launchable as it stands: the job exists in the Definitions and accepts the request's run config
    job_def = defs.resolve_job_def(job)
    dg.validate_run_config(job_def, request.run_config or None)
    if job_def.partitions_def is not None:
        assert request.partition_key in job_def.partitions_def.get_partition_keys()
    if leaf == "D→O":
        assert request.run_config["ops"]["labeling_batch"]["config"]["segment"] == "language:jp_en"
    # the same evidence is judged once: the next tick launches nothing
    assert isinstance(again, dg.SkipReason) and "no new evidence" in again.skip_message
    TABLE.append(
        {
            "leaf": leaf,
            "trigger": request.tags["reason"],
            "action": action,
            "run": f"{job} ({request.run_key}{', partition ' + request.partition_key if request.partition_key else ''})",
        }
    )
    print(f"\n[tree] {leaf} | {request.tags['reason']} | {action} | {job} {request.run_key}")


def test_healthy_signals_request_nothing(tmp_path, champion, monkeypatch):
    result, _ = evaluate(tmp_path, champion, None, monkeypatch)
    assert isinstance(result, dg.SkipReason) and "no leaf reached" in result.skip_message


def test_no_champion_baseline_means_no_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("MANGA_HOME", str(tmp_path / "home"))
    registry = MlflowRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "prediction_log": SqlitePredictionLogResource(path=str(tmp_path / "log.sqlite")),
            "mlflow_registry": registry,
            "monitoring": MonitoringSettings(window=WINDOW),
            "artifact_store": LocalArtifactStore(root=str(tmp_path / "artifacts")),
        },
    )
    result = decision_tree_sensor(context)
    assert isinstance(result, dg.SkipReason) and "no champion" in result.skip_message


def test_golden_audit_leaf_is_a_gate_report_over_the_champion(tmp_path, champion):
    """C→J's remedy reads the golden set only through the gate's door, as a gate report, and lists
    confident contradictions for a person (it chooses nothing)."""
    from manga_assets.golden_set_audit import golden_set_audit
    from resources.gate_settings import GateSettings

    registry, _, _ = champion
    result = dg.materialize(
        [golden_set_audit],
        resources={
            "artifact_store": LocalArtifactStore(root=str(tmp_path / "artifacts")),
            "mlflow_registry": registry,
            "gate_settings": GateSettings(),
        },
    )
    metadata = result.asset_materializations_for_node("golden_set_audit")[0].metadata
    assert metadata["report"].value == "gate report: reads the golden set"
    assert metadata["golden_rows"].value == len(GateSettings().golden_rows("gate report")) > 0
    assert metadata["stale_label_candidates"].value >= 0
