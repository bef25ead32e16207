"""Hyperparameter search: Optuna TPE with a median pruner over the seed's search space.

Trials live in an RDB (SQLite under $MANGA_HOME by default). Point the storage at PostgreSQL and start
more workers on the same study name to search in parallel:
`python -m manga_intent.hpo_worker --storage postgresql://... --study manga-intent --n-trials 10`.
The Dagster asset `hpo_study` (manga_assets/hpo_study.py) runs the same `run_study`.
"""

from dataclasses import replace

from manga_intent.data import Example
from manga_intent.home import manga_home
from manga_intent.training import TrainConfig, train_classifier

#: The seed's search space; the lr range is scaled for the base model (see `lr_range`).
SEED_SPACE = {
    "lr": (1e-5, 5e-5),
    "batch_size": (16, 32),
    "gamma": (1.0, 3.0),
    "lr_decay": (0.70, 0.88),
    "epochs": (2, 5),
    "warmup_ratio": (0.05, 0.15),
    "head_lr_multiplier": (2.0, 30.0),
}
SEED_REFERENCE_LR = 2e-5  # the seed's base rate for DistilBERT, the centre its lr range was chosen around


def lr_range(scale: float) -> tuple[float, float]:
    low, high = SEED_SPACE["lr"]
    return low * scale, high * scale


def default_storage() -> str:
    return f"sqlite:///{manga_home() / 'optuna.db'}"


def open_storage(url: str, *, attempts: int = 5, log=print):
    """The study's RDB storage, safe when several workers open a fresh database at once.

    Optuna creates its tables (and on PostgreSQL an ENUM type) on first use; two workers doing that at the
    same moment collide on the catalog (`duplicate key value violates unique constraint "pg_type_..."`).
    The loser retries after a short jittered wait, by which time the schema exists and creation is a no-op.
    """
    import random
    import time

    import optuna
    import sqlalchemy.exc

    if not url.startswith(("postgresql", "mysql")):
        return url  # SQLite: one file, one writer; Optuna's own open is enough
    for attempt in range(1, attempts + 1):
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.DBAPIError as error:
            if attempt == attempts:
                raise
            log(
                f"optuna storage: schema creation raced another worker ({type(error.orig).__name__}); "
                f"retry {attempt}/{attempts - 1}"
            )
            time.sleep(0.2 * attempt + random.random() * 0.3)
    raise AssertionError("unreachable")


def suggest(trial, scale: float, max_epochs: int) -> dict:
    """The seed's space plus recipe v2's head learning-rate multiplier; gamma only when the loss is focal."""
    low, high = lr_range(scale)
    params = {
        "lr": trial.suggest_float("lr", low, high, log=True),
        "head_lr_multiplier": trial.suggest_float(
            "head_lr_multiplier", *SEED_SPACE["head_lr_multiplier"], log=True
        ),
        "batch_size": trial.suggest_categorical("batch_size", list(SEED_SPACE["batch_size"])),
        "lr_decay": trial.suggest_float("lr_decay", *SEED_SPACE["lr_decay"]),
        "epochs": trial.suggest_int(
            "epochs", SEED_SPACE["epochs"][0], max(SEED_SPACE["epochs"][0], max_epochs)
        ),
        "warmup_ratio": trial.suggest_float("warmup_ratio", *SEED_SPACE["warmup_ratio"]),
    }
    if TrainConfig().loss == "focal":
        params["gamma"] = trial.suggest_float("gamma", *SEED_SPACE["gamma"])
    return params


def run_study(
    train: list[Example],
    val: list[Example],
    labels: list[str],
    *,
    n_trials: int,
    storage: str,
    study_name: str,
    scale: float,
    max_epochs: int,
    seed: int,
    base_model: str | None,
    model_factory=None,
    log=print,
):
    """Optimise validation accuracy; each epoch reports to the median pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=open_storage(storage, log=log),
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )

    def objective(trial) -> float:
        import os
        import socket

        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest(trial, scale, max_epochs)
        config = replace(TrainConfig(), max_steps=None, **params)  # the searched epochs are the budget

        def report(stats) -> None:
            trial.report(stats.val_accuracy, stats.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"epoch {stats.epoch}: val accuracy {stats.val_accuracy:.4f} below median"
                )

        result = train_classifier(
            train,
            val,
            labels,
            config,
            base_model=base_model,
            progress=False,
            model_and_tokenizer=model_factory() if model_factory else None,
            on_epoch_end=report,
        )
        best = max(h.val_accuracy for h in result.history)
        log(f"trial {trial.number}: val accuracy {best:.4f} with {params}")
        return best

    study.optimize(objective, n_trials=n_trials, gc_after_trial=True)
    return study


def trials_rows(study) -> list[dict]:
    """One row per trial (number, state, validation accuracy, parameters) for tables and reports."""
    rows = []
    for t in study.trials:
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "val_accuracy": t.value,
                **{k: (f"{v:.2e}" if k == "lr" else v) for k, v in t.params.items()},
            }
        )
    return rows


def default_lr_scale(base_model: str | None) -> float:
    """Scale of the seed's lr range for a base model: its default rate / the seed's 2e-5 (config only, no weights)."""
    from transformers import AutoConfig

    from manga_intent.model_io import resolve_base_model
    from manga_intent.training import default_learning_rate

    model_config = AutoConfig.from_pretrained(resolve_base_model(base_model), local_files_only=True)
    return default_learning_rate(model_config) / SEED_REFERENCE_LR
