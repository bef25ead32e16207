"""`seed_sweep_report`: every materialized seed partition scored on the test split and (as a gate report)
on the golden set, with seed-mean CIs and the seed's segment tables."""

import tempfile
from pathlib import Path

import dagster as dg

from manga_assets.manifests import Calibration, DatasetSnapshot, TrainedModel
from manga_assets.metadata import markdown_table, md
from manga_assets.partitions import seed_partitions
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.heldout import GATE_REPORT
from manga_intent.inference import predict_logits, softmax
from manga_intent.model_io import load_trained
from manga_intent.seed_sweep import sweep_summary
from resources.gate_settings import GateSettings
from resources.storage import ArtifactStore


class SeedSweepConfig(dg.Config):
    bootstrap: int = 1000


def latest_manifest(instance: dg.DagsterInstance, key: str, partition: str) -> dict | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    metadata = records[0].asset_materialization.metadata
    return metadata["manifest"].value if "manifest" in metadata else None


@dg.asset(group_name="reporting", deps=["trained_model", "calibrator"], kinds={"python"})
def seed_sweep_report(
    context: dg.AssetExecutionContext,
    config: SeedSweepConfig,
    intent_dataset: DatasetSnapshot,
    artifact_store: ArtifactStore,
    gate_settings: GateSettings,
) -> dg.MaterializeResult:
    """Seed-sweep summary over every seed partition materialized so far (backfill them all for the full sweep).

    The golden-set columns are a gate report: nothing is chosen from them.
    """
    seeds = []
    for partition in seed_partitions.get_partition_keys():
        model = latest_manifest(context.instance, "trained_model", partition)
        calibration = latest_manifest(context.instance, "calibrator", partition)
        if model and calibration:
            seeds.append((partition, TrainedModel.from_dict(model), Calibration.from_dict(calibration)))
    if not seeds:
        raise dg.Failure("no seed partition of trained_model + calibrator is materialized yet")
    test = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri)).test
    sets = {
        "test split": [{"text": e.text, "label": e.label, **e.meta} for e in test],
        "golden set (gate report)": gate_settings.golden_rows(GATE_REPORT),
    }
    probs: dict[str, list] = {name: [] for name in sets}
    labels = None
    for _partition, trained, calibration in seeds:  # load each seed's model once, score both sets
        with tempfile.TemporaryDirectory() as tmp:
            model, tokenizer, card = load_trained(artifact_store.get_dir(trained.model_uri, Path(tmp)))
            labels = card["labels"]
            for name, rows in sets.items():
                logits = predict_logits(model, tokenizer, [r["text"] for r in rows])
                probs[name].append(softmax(logits, calibration.temperature))
    results = {
        name: sweep_summary(
            rows, probs[name], labels, n_boot=config.bootstrap, by_channel=name == "test split"
        )
        for name, rows in sets.items()
    }
    metadata = {"seeds": dg.MetadataValue.json([s[0] for s in seeds]), "n_seeds": len(seeds)}
    for name, result in results.items():
        prefix = name.split()[0]
        summary_rows = [
            {"metric": metric, "seed mean": v["mean"], "CI95 low": v["ci95"][0], "CI95 high": v["ci95"][1]}
            for metric, v in result["summary"].items()
        ]
        metadata[f"{prefix}_summary"] = md(markdown_table(summary_rows))
        metadata[f"{prefix}_by_language"] = md(markdown_table(result["language"], floats=3))
        metadata[f"{prefix}_by_rarity"] = md(markdown_table(result["rarity"], floats=3))
        if result["channel"]:
            metadata[f"{prefix}_by_channel"] = md(markdown_table(result["channel"], floats=3))
        metadata[f"{prefix}_accuracy_mean"] = result["summary"]["accuracy"]["mean"]
    context.log.info(
        f"seed sweep over {[s[0] for s in seeds]}: golden accuracy mean (gate report) "
        f"{results['golden set (gate report)']['summary']['accuracy']['mean']:.4f}"
    )
    return dg.MaterializeResult(metadata=metadata)
