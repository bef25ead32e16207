"""`hpo_study`: the Optuna search of `manga_intent.hpo` over the dataset's validation split.

Materialized by `hpo_job` (on demand, and by its own schedule), never by a retrain: a study costs many
fine-tunings. `trained_model` reads the newest study's best trial (`latest_hpo_result`) and uses it when it
was searched for the same base model and label set (`hpo_choice` says which trial, or why not).
"""

import dagster as dg

from manga_assets.labeling import latest_manifest
from manga_assets.manifests import DatasetSnapshot, HpoResult, SyntheticSet
from manga_assets.metadata import markdown_table, md
from manga_assets.snapshots import dataset_splits, read_snapshot, synthetic_training_rows
from manga_intent.data import SPLIT_SEED, stratified_subsample
from manga_intent.hpo import default_lr_scale, default_storage, lr_range, run_study, trials_rows
from manga_intent.model_io import resolve_base_model
from manga_intent.taxonomy import INTENTS
from resources.model_settings import BaseModelResource
from resources.storage import ArtifactStore


class HpoConfig(dg.Config):
    n_trials: int = 20
    storage_url: str = ""
    """Optuna RDB storage; default sqlite:///$MANGA_HOME/optuna.db. PostgreSQL URLs allow parallel workers."""
    study_name: str = "manga-intent"
    train_rows: int = 0
    """Subsample the training split's real rows for faster trials (0 = all rows): stratified by intent and
    seeded, so the newest human labels are as likely to stay as any row; the synthetic share applies to what
    is left."""
    max_epochs: int = 5
    """Cap on the epochs dimension (the seed's space is 2-5)."""
    lr_scale: float = 0.0
    """Multiply the seed's 1e-5..5e-5 lr range; 0 = scale by the base model's default rate / 2e-5."""
    seed: int = 42
    synthetic_share: float = 0.0
    """Share of the searched training rows that may be synthetic: set it (and `synthetic_balance`) as
    `trained_model`'s are set, so the study searches the data the model trains on (same defaults)."""
    synthetic_balance: str = "per_intent"


CODE_VERSION = "hpo-study-4"  # 4: train_rows is a stratified seeded subsample, not a prefix


def latest_hpo_result(instance: dg.DagsterInstance) -> HpoResult | None:
    """The study recorded by the newest `hpo_study` materialization (None before the first)."""
    return latest_manifest(instance, "hpo_study", HpoResult)


def hpo_choice(
    mode: str, study: HpoResult | None, base_model: str, labels: list[str]
) -> tuple[dict | None, str]:
    """The searched parameters a training run should use, and why (or why not), for its metadata.

    `auto`: the newest study's best trial when it searched the same base model and label set; `off`: never;
    `required`: like auto, but a missing or mismatched study is an error rather than the recipe's defaults.
    """
    if mode not in ("auto", "off", "required"):
        raise ValueError(f"hpo must be auto, off or required, got {mode!r}")
    if mode == "off":
        return None, "hpo=off: recipe defaults"
    if study is None:
        reason = "no hpo_study materialized yet (run hpo_job): recipe defaults"
    elif study.base_model != base_model:
        reason = (
            f"newest study searched base model {study.base_model or '?'}, not {base_model}: recipe defaults"
        )
    elif list(study.labels) != list(labels):
        reason = f"newest study searched labels {study.labels}, not {labels}: recipe defaults"
    else:
        return dict(study.best_params), (
            f"study {study.study_name} trial #{study.best_trial}: best validation accuracy "
            f"{study.best_value:.4f} of {study.n_trials} trials, same base model and label set"
        )
    if mode == "required":
        raise RuntimeError(f"hpo=required but {reason}")
    return None, reason


@dg.asset(group_name="training", kinds={"optuna"}, code_version=CODE_VERSION)
def hpo_study(
    context: dg.AssetExecutionContext,
    config: HpoConfig,
    intent_dataset: DatasetSnapshot,
    synthetic_set: SyntheticSet,
    artifact_store: ArtifactStore,
    base_model: BaseModelResource,
) -> dg.Output[HpoResult]:
    """Best recipe hyperparameters on the validation split; the next `trained_model` adopts them."""
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    # the split seed, not the sampler's: workers sharing the study (`hpo_worker`) search these rows too
    real = stratified_subsample(splits.train, config.train_rows, seed=SPLIT_SEED)
    synthetic = synthetic_training_rows(
        artifact_store,
        synthetic_set,
        n_real=len(real),
        max_share=config.synthetic_share,
        balance=config.synthetic_balance,
        seed=config.seed,
    )
    train = real + synthetic
    scale = config.lr_scale or default_lr_scale(base_model.name_or_path)
    storage = config.storage_url or default_storage()
    study = run_study(
        train,
        splits.val,
        list(INTENTS),
        n_trials=config.n_trials,
        storage=storage,
        study_name=config.study_name,
        scale=scale,
        max_epochs=config.max_epochs,
        seed=config.seed,
        base_model=base_model.name_or_path,
        log=context.log.info,
    )
    completed = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if not completed:
        raise RuntimeError(f"study {config.study_name}: no trial completed")
    best = study.best_trial
    shown_storage = storage if storage.startswith("sqlite") else storage.split("@")[-1]
    manifest = HpoResult(
        study_name=config.study_name,
        storage=storage if storage.startswith("sqlite") else "<rdb>",
        best_params=best.params,
        best_value=best.value,
        n_trials=len(study.trials),
        best_trial=best.number,
        base_model=resolve_base_model(base_model.name_or_path),
        labels=list(INTENTS),
        data_version=intent_dataset.data_version,
    )
    return dg.Output(
        manifest,
        metadata={
            "best_val_accuracy": best.value,
            "best_params": dg.MetadataValue.json(best.params),
            "trials": len(study.trials),
            "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
            "lr_range": dg.MetadataValue.json([f"{v:.2e}" for v in lr_range(scale)]),
            "trials_table": md(markdown_table(trials_rows(study), floats=3)),
            "storage": shown_storage,
            "best_trial": best.number,
            "searched_rows": dg.MetadataValue.json(
                {
                    "real": len(splits.train),
                    "real_used": len(real),
                    "synthetic": len(synthetic),
                    "used": len(train),
                }
            ),
            "manifest": dg.MetadataValue.json(manifest.as_dict()),
        },
    )
