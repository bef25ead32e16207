"""`methods_comparison` (method x seed partitions) and its report, with a tiny model on a small dataset."""

import json
import random

import dagster as dg
import pytest
from conftest import exported_human_labels
from dagster_aws.s3 import S3Resource

from manga_assets.definitions import defs
from manga_assets.intent_dataset import intent_dataset
from manga_assets.methods_comparison import methods_comparison, methods_comparison_report
from manga_assets.seed_corpus import seed_corpus
from manga_intent.taxonomy import INTENTS
from resources.model_settings import BaseModelResource
from resources.storage import LocalArtifactStore


@pytest.fixture
def source(tmp_path):
    rng = random.Random(0)
    counts = {intent: (4 if intent in ("checkout_help", "escalation") else 14) for intent in INTENTS}
    path = tmp_path / "src"
    path.mkdir()
    with (path / "rows.jsonl").open("w") as fh:
        for intent, n in counts.items():
            for i in range(n):
                text = f"{intent.replace('_', ' ')} {rng.choice(['please', 'now', 'today'])} {i}"
                fh.write(json.dumps({"text": text, "label": intent}) + "\n")
    return path


def test_grid_partitions_and_report(tmp_path, source, tiny_base_dir, monkeypatch):
    monkeypatch.setenv("MANGA_HOME", str(tmp_path / "home"))
    instance = dg.DagsterInstance.ephemeral()
    resources = {
        "artifact_store": LocalArtifactStore(root=str(tmp_path / "artifacts")),
        "s3": S3Resource(),
        "base_model": BaseModelResource(name_or_path=str(tiny_base_dir)),
    }
    assets = [
        exported_human_labels(None),
        seed_corpus,
        intent_dataset,
        methods_comparison,
        methods_comparison_report,
    ]
    dataset = dg.materialize(
        assets,
        selection=["human_labels", "seed_corpus", "intent_dataset"],
        instance=instance,
        resources=resources,
        run_config={"ops": {"seed_corpus": {"config": {"source_uri": str(source)}}}},
    )
    assert dataset.success
    small = {"ops": {"methods_comparison": {"config": {"max_steps": 3, "latency_messages": 5}}}}
    for method in ("plain_ce", "threshold_moving", "recipe_v2"):
        for seed in ("1", "2"):
            run = dg.materialize(
                assets,
                selection=["methods_comparison"],
                partition_key=dg.MultiPartitionKey({"method": method, "seed": seed}),
                instance=instance,
                resources=resources,
                run_config=small,
            )
            assert run.success
            meta = run.asset_materializations_for_node("methods_comparison")[0].metadata
            assert 0 <= meta["test_accuracy"].value <= 1 and meta["p95_latency_ms"].value > 0
            assert meta["step_budget"].value == 3
    four = {"ops": {"methods_comparison": {"config": {"max_steps": 4, "latency_messages": 5}}}}
    assert dg.materialize(
        assets,
        selection=["methods_comparison"],
        partition_key=dg.MultiPartitionKey({"method": "plain_ce", "seed": "1"}),
        instance=instance,
        resources=resources,
        run_config=four,
    ).success  # another setup: stored beside the 3-step grid, never tabled with it
    unmatched = dg.materialize(
        assets,
        selection=["methods_comparison_report"],
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )  # the default budget: no runs of that setup exist
    assert not unmatched.success
    failure = unmatched.get_step_failure_events()[0].event_specific_data.error
    assert (
        "setup" in failure.message and "backfill methods_comparison with the same config" in failure.message
    )
    report = dg.materialize(
        assets,
        selection=["methods_comparison_report"],
        instance=instance,
        resources=resources,
        run_config={"ops": {"methods_comparison_report": {"config": {"max_steps": 3}}}},
    )
    assert report.success
    meta = report.asset_materializations_for_node("methods_comparison_report")[0].metadata
    assert meta["runs"].value == 6 and meta["setup"].value
    assert meta["seeds_per_method"].value == {"plain_ce": 2, "threshold_moving": 2, "recipe_v2": 2}
    assert "separated?" in meta["table"].value and "data:image/png;base64" in meta["plot"].value


def test_grid_job_covers_every_method_and_ten_seeds():
    job = defs.resolve_job_def("methods_comparison_job")
    keys = job.partitions_def.get_partition_keys()
    assert len(keys) == 8 * 10
    assert defs.resolve_job_def("retrain_job").partitions_def.get_partition_keys() == ["42", "123", "2024"]
