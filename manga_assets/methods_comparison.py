"""`methods_comparison` (one method x seed run per partition) and `methods_comparison_report` (the table).

A backfill over `methods_comparison`'s partitions runs the grid (8 methods x 10 seeds); each partition
trains one method with one seed on the dataset's fixed split and scores the TEST split (never the
golden set). Post-hoc methods (threshold moving, two-stage) reuse the plain-CE run of the same seed
through a local output cache under $MANGA_HOME, or train it themselves when it is not there yet.
The report reads every stored run of the dataset version and builds the table, paired tests and plot.
"""

import dagster as dg

from manga_assets.manifests import DatasetSnapshot, MethodRun
from manga_assets.metadata import md
from manga_assets.partitions import method_seed_partitions
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent import compare
from manga_intent.calibrator_fit import shipped_ood_pools
from manga_intent.home import manga_home
from manga_intent.plots import markdown_image, methods_comparison_png
from manga_intent.taxonomy import INTENTS
from manga_intent.training import TrainConfig, describe_step_budget, with_step_budget
from resources.model_settings import BaseModelResource
from resources.storage import ArtifactStore


class MethodsComparisonConfig(dg.Config):
    max_steps: int = 0
    """Optimiser-step budget shared by every method; 0 = recipe v2's default."""
    latency_messages: int = compare.LATENCY_MESSAGES

    def base_config(self) -> TrainConfig:
        return with_step_budget(TrainConfig(), self.max_steps or None, None)


def _outlier_texts() -> list[str]:
    """What recipe v2's outlier exposure trains on here: the pool `trained_model` uses."""
    return shipped_ood_pools().train_texts


def _key_prefix(data_version: str, setup: str) -> str:
    """Runs live under data version and setup, so the report never tables two recipes (or base models) as one."""
    return f"methods_comparison/{data_version.removeprefix('sha256:')[:16]}/{setup}"


@dg.asset(group_name="comparison", partitions_def=method_seed_partitions, kinds={"pytorch"})
def methods_comparison(
    context: dg.AssetExecutionContext,
    config: MethodsComparisonConfig,
    intent_dataset: DatasetSnapshot,
    artifact_store: ArtifactStore,
    base_model: BaseModelResource,
) -> dg.Output[MethodRun]:
    """Train and score one (method, seed) of the comparative-methods grid on the test split."""
    keys = context.partition_key.keys_by_dimension
    method, seed = keys["method"], int(keys["seed"])
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    base = config.base_config()
    record = compare.run_method(
        method,
        seed,
        splits,
        INTENTS,
        base_model=base_model.name_or_path,
        base_config=base,
        cache=compare.OutputCache(manga_home() / "compare_cache"),
        data_version=intent_dataset.data_version,
        latency_messages=config.latency_messages,
        outlier_texts=_outlier_texts(),
    )
    record["data_hash"] = intent_dataset.data_version
    uri = artifact_store.put_json(
        record, f"{_key_prefix(intent_dataset.data_version, record['setup'])}/{method}/seed={seed}.json"
    )
    run = MethodRun(
        method=method,
        seed=seed,
        record_uri=uri,
        data_version=intent_dataset.data_version,
        accuracy=record["accuracy"],
        macro_f1=record["macro_f1"],
        rare_class_accuracy=record["rare_class_accuracy"],
        ece_calibrated=record["ece_calibrated"],
        p95_latency_ms=record["p95_latency_ms"],
    )
    return dg.Output(
        run,
        metadata={
            "test_accuracy": record["accuracy"],
            "test_macro_f1": record["macro_f1"],
            "test_rare_class_accuracy": record["rare_class_accuracy"],
            "per_rare_intent_accuracy": dg.MetadataValue.json(record["per_rare_intent_accuracy"]),
            "test_ece_calibrated": record["ece_calibrated"],
            "p95_latency_ms": record["p95_latency_ms"],
            "step_budget": base.max_steps,
            "min_epochs": base.min_epochs,
            "setup": record["setup"],
            "record_uri": uri,
            "manifest": dg.MetadataValue.json(run.as_dict()),
        },
    )


@dg.asset(group_name="comparison", deps=[methods_comparison], kinds={"python"})
def methods_comparison_report(
    context: dg.AssetExecutionContext,
    config: MethodsComparisonConfig,
    intent_dataset: DatasetSnapshot,
    artifact_store: ArtifactStore,
    base_model: BaseModelResource,
) -> dg.Output[dict]:
    """Mean ± 95% CI across seeds per method, paired bootstrap and McNemar vs recipe v2 (Holm), a plot.

    Only runs of this setup (base model, step budget, recipe defaults) are tabled; give it the same config as
    the backfill of `methods_comparison`."""
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    base = config.base_config()
    setup = compare.setup_key(base, base_model.name_or_path, _outlier_texts())
    prefix = _key_prefix(intent_dataset.data_version, setup)
    keys = [k for k in artifact_store.list_keys(prefix) if "/seed=" in k]
    records = [artifact_store.get_json(artifact_store.uri_for(key)) for key in keys]
    if not records:
        raise dg.Failure(
            f"no methods_comparison runs stored for data version {intent_dataset.data_version} and setup "
            f"{setup} (base model {base_model.name_or_path!r}, step budget {describe_step_budget(base)}); "
            "backfill methods_comparison with the same config first"
        )
    summary = compare.summarize(records, compare.labels_of_test_split(splits, INTENTS))
    table = compare.markdown_table(summary)
    png = methods_comparison_png(summary)
    separated = sorted(m for m, t in summary["tests_vs_recipe_v2"].items() if t["separated"])
    context.log.info(f"{len(records)} runs; separated from recipe v2: {separated or 'none'}")
    uri = artifact_store.put_json(summary, f"{prefix}/summary.json")
    return dg.Output(
        {"summary_uri": uri, "runs": len(records), "separated_from_recipe_v2": separated},
        metadata={
            "runs": len(records),
            "setup": setup,
            "seeds_per_method": dg.MetadataValue.json({r["method"]: r["seeds"] for r in summary["methods"]}),
            "table": md(table),
            "plot": md(markdown_image(png, "methods vs recipe v2")),
            "separated_from_recipe_v2": dg.MetadataValue.json(separated),
            "summary_uri": uri,
        },
    )
