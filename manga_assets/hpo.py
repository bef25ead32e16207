"""`hpo_study`: Optuna TPE with a median pruner over the seed's search space.

Trials live in an RDB (SQLite under $MANGA_HOME by default). Point `storage_url` at PostgreSQL and
start more workers on the same study name to search in parallel:
`python -m manga_assets.hpo --storage postgresql://... --study manga-intent --n-trials 10`.
"""

import argparse
import sys
from dataclasses import replace

import dagster as dg

from manga_assets.common import markdown_table, md, read_snapshot, real_splits
from manga_intent.data import Example
from manga_intent.training import TrainConfig, train_classifier
from resources.model_settings import BaseModelResource
from resources.paths import manga_home
from resources.storage import ArtifactStore

#: The seed's search space; the lr range is scaled for the base model (see `lr_range`).
SEED_SPACE = {"lr": (1e-5, 5e-5), "batch_size": (16, 32), "gamma": (1.0, 3.0), "lr_decay": (0.70, 0.88),
              "epochs": (2, 5), "warmup_ratio": (0.05, 0.15)}
SEED_REFERENCE_LR = 2e-5  # the seed's base rate for DistilBERT, the centre its lr range was chosen around


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


def lr_range(scale: float) -> tuple[float, float]:
    low, high = SEED_SPACE["lr"]
    return low * scale, high * scale


def default_storage() -> str:
    return f"sqlite:///{manga_home() / 'optuna.db'}"


def suggest(trial, scale: float, max_epochs: int) -> dict:
    low, high = lr_range(scale)
    return {
        "lr": trial.suggest_float("lr", low, high, log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(SEED_SPACE["batch_size"])),
        "gamma": trial.suggest_float("gamma", *SEED_SPACE["gamma"]),
        "lr_decay": trial.suggest_float("lr_decay", *SEED_SPACE["lr_decay"]),
        "epochs": trial.suggest_int("epochs", SEED_SPACE["epochs"][0], max(SEED_SPACE["epochs"][0], max_epochs)),
        "warmup_ratio": trial.suggest_float("warmup_ratio", *SEED_SPACE["warmup_ratio"]),
    }


def run_study(
    train: list[Example], val: list[Example], labels: list[str], *, n_trials: int, storage: str, study_name: str,
    scale: float, max_epochs: int, seed: int, base_model: str | None, model_factory=None, log=print,
):
    """Optimise validation accuracy; each epoch reports to the median pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )

    def objective(trial) -> float:
        params = suggest(trial, scale, max_epochs)
        config = replace(TrainConfig(), **params)

        def report(stats) -> None:
            trial.report(stats.val_accuracy, stats.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {stats.epoch}: val accuracy {stats.val_accuracy:.4f} below median")

        result = train_classifier(train, val, labels, config, base_model=base_model, progress=False,
                                  model_and_tokenizer=model_factory() if model_factory else None, on_epoch_end=report)
        best = max(h.val_accuracy for h in result.history)
        log(f"trial {trial.number}: val accuracy {best:.4f} with {params}")
        return best

    study.optimize(objective, n_trials=n_trials, gc_after_trial=True)
    return study


def trials_table(study) -> str:
    rows = []
    for t in study.trials:
        rows.append({"trial": t.number, "state": t.state.name, "val_accuracy": t.value,
                     **{k: (f"{v:.2e}" if k == "lr" else v) for k, v in t.params.items()}})
    return markdown_table(rows, floats=3)


@dg.asset(group_name="training", kinds={"optuna"})
def hpo_study(
    context: dg.AssetExecutionContext, config: HpoConfig, intent_dataset: dict, synthetic_set: dict,
    artifact_store: ArtifactStore, base_model: BaseModelResource,
) -> dg.Output[dict]:
    """Best recipe hyperparameters on the validation split; `trained_model` can adopt them by config."""
    from transformers import AutoConfig

    from manga_intent.labels import INTENTS
    from manga_intent.model_io import resolve_base_model
    from manga_intent.training import default_learning_rate

    real = read_snapshot(artifact_store, intent_dataset["uri"])
    splits = real_splits(real)
    train = splits.train + read_snapshot(artifact_store, synthetic_set["kept_uri"], allow_empty=True)
    if config.train_rows:
        train = train[: config.train_rows]
    scale = config.lr_scale
    if not scale:  # only the architecture's config is needed, not its weights
        model_config = AutoConfig.from_pretrained(resolve_base_model(base_model.name_or_path), local_files_only=True)
        scale = default_learning_rate(model_config) / SEED_REFERENCE_LR
    storage = config.storage_url or default_storage()
    study = run_study(train, splits.val, list(INTENTS), n_trials=config.n_trials, storage=storage,
                      study_name=config.study_name, scale=scale, max_epochs=config.max_epochs, seed=config.seed,
                      base_model=base_model.name_or_path, log=context.log.info)
    completed = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if not completed:
        raise RuntimeError(f"study {config.study_name}: no trial completed")
    best = study.best_trial
    manifest = {"study_name": config.study_name, "storage": storage if storage.startswith("sqlite") else "<rdb>",
                "best_params": best.params, "best_value": best.value, "n_trials": len(study.trials)}
    return dg.Output(manifest, metadata={
        "best_val_accuracy": best.value, "best_params": dg.MetadataValue.json(best.params),
        "trials": len(study.trials),
        "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
        "lr_range": dg.MetadataValue.json([f"{v:.2e}" for v in lr_range(scale)]),
        "trials_table": md(trials_table(study)),
        "storage": storage if storage.startswith("sqlite") else storage.split("@")[-1],
    })


def main(argv: list[str] | None = None) -> int:
    """An extra Optuna worker on a shared RDB study (trains on the shipped seed corpus split)."""
    from manga_assets.shipped_data import SEED_CORPUS
    from manga_intent.data import load_jsonl
    from manga_intent.labels import INTENTS

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--storage", default=default_storage())
    parser.add_argument("--study", default="manga-intent")
    parser.add_argument("--n-trials", type=int, default=5)
    parser.add_argument("--lr-scale", type=float, default=15.0)
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--seed", type=int, default=0, help="sampler seed; give each worker its own")
    args = parser.parse_args(argv)
    splits = real_splits(load_jsonl(SEED_CORPUS.path, allowed_labels=INTENTS).examples)
    study = run_study(splits.train, splits.val, list(INTENTS), n_trials=args.n_trials, storage=args.storage,
                      study_name=args.study, scale=args.lr_scale, max_epochs=5, seed=args.seed,
                      base_model=args.base_model)
    print(study.best_trial.params, study.best_value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
