"""`hpo_study`: the Optuna search of `manga_intent.hpo` over the dataset's validation split."""

import dagster as dg

from manga_assets.manifests import DatasetSnapshot, HpoResult, SyntheticSet
from manga_assets.metadata import markdown_table, md
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.hpo import default_lr_scale, default_storage, lr_range, run_study, trials_rows
from manga_intent.taxonomy import INTENTS
from resources.model_settings import BaseModelResource
from resources.storage import ArtifactStore


class HpoConfig(dg.Config):
    n_trials: int = 20
    storage_url: str = ""
    """Optuna RDB storage; default sqlite:///$MANGA_HOME/optuna.db. PostgreSQL URLs allow parallel workers."""
    study_name: str = "manga-intent"
    train_rows: int = 0
    """Subsample the training split for faster trials (0 = all rows)."""
    max_epochs: int = 5
    """Cap on the epochs dimension (the seed's space is 2-5)."""
    lr_scale: float = 0.0
    """Multiply the seed's 1e-5..5e-5 lr range; 0 = scale by the base model's default rate / 2e-5."""
    seed: int = 42


@dg.asset(group_name="training", kinds={"optuna"})
def hpo_study(
    context: dg.AssetExecutionContext,
    config: HpoConfig,
    intent_dataset: DatasetSnapshot,
    synthetic_set: SyntheticSet,
    artifact_store: ArtifactStore,
    base_model: BaseModelResource,
) -> dg.Output[HpoResult]:
    """Best recipe hyperparameters on the validation split; `trained_model` can adopt them by config."""
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    train = splits.train + read_snapshot(artifact_store, synthetic_set.kept_uri, allow_empty=True)
    if config.train_rows:
        train = train[: config.train_rows]
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
        },
    )
