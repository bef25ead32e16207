"""An extra Optuna worker on a shared RDB study, for searching in parallel from more machines:

  python -m manga_intent.hpo_worker --storage postgresql://user@host/db --study manga-intent --seed 7

It trains on the shipped seed corpus's training split and scores the validation split, like `hpo_study`.
"""

import argparse
import sys
from dataclasses import replace

from manga_intent.hpo import default_lr_scale, default_storage, run_study


def main(argv: list[str] | None = None) -> int:
    """An extra Optuna worker on a shared RDB study (trains on the shipped seed corpus split)."""
    from manga_intent.data import SPLIT_SEED, load_jsonl, make_splits, stratified_subsample
    from manga_intent.shipped_data import SEED_CORPUS
    from manga_intent.taxonomy import INTENTS

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--storage", default=default_storage())
    parser.add_argument("--study", default="manga-intent")
    parser.add_argument("--n-trials", type=int, default=5)
    parser.add_argument(
        "--lr-scale",
        type=float,
        default=0.0,
        help="scale of the seed's lr range (default: the base model's default rate / 2e-5)",
    )
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--seed", type=int, default=0, help="sampler seed; give each worker its own")
    parser.add_argument(
        "--data", default=str(SEED_CORPUS.path), help="labelled JSONL (default: the seed corpus)"
    )
    parser.add_argument(
        "--train-rows", type=int, default=0, help="stratified subsample of the training split (0 = all)"
    )
    parser.add_argument("--max-epochs", type=int, default=5)
    args = parser.parse_args(argv)
    splits = make_splits(load_jsonl(args.data, allowed_labels=INTENTS).examples, seed=SPLIT_SEED)
    if args.train_rows:
        splits = replace(
            splits, train=stratified_subsample(splits.train, args.train_rows, seed=SPLIT_SEED)
        )  # as hpo_study's
    scale = args.lr_scale or default_lr_scale(args.base_model)
    study = run_study(
        splits.train,
        splits.val,
        list(INTENTS),
        n_trials=args.n_trials,
        storage=args.storage,
        study_name=args.study,
        scale=scale,
        max_epochs=args.max_epochs,
        seed=args.seed,
        base_model=args.base_model,
    )
    print(study.best_trial.params, study.best_value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
