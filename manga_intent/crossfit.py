"""K-fold cross-fitting on the training + validation pool: out-of-fold (OOF) logits for every pool row.

Two uses, one code path:
- choosing recipe settings (bench/cv_select.py): a 160-row validation split moves 0.6 pp per row and
  holds ~5 rows of a rare intent, too few to tell variants apart; OOF predictions score every pool row;
- calibrating (`manga-intent train --calibration cv`): the temperature is fitted on all OOF logits of the
  pool (1,440 rows for the seed corpus) instead of the 160 validation rows.

The test split never enters: the pool is train + val. Inside each fold the recipe's early stopping uses a
validation set carved from the training folds (10%, stratified, seeded), as `manga-intent train` carves
one from a train-only file; the held-out fold is only predicted. Each fold trains with its own fixed
init/sampler seed, the same for every recipe variant, so variants pair up row by row.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from manga_intent.data import Example, carve_validation

FOLD_SEED = 0


def stratified_folds(labels: Sequence[str], k: int, seed: int = FOLD_SEED) -> np.ndarray:
    """A fold id per row: each label's rows are shuffled with their own seeded RNG and dealt round-robin."""
    if k < 2:
        raise ValueError(f"cross-fitting needs k >= 2 folds (got {k})")
    folds = np.zeros(len(labels), dtype=int)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    for label in sorted(by_label):
        rows = by_label[label]
        random.Random(f"{seed}:{label}").shuffle(rows)
        for j, i in enumerate(rows):
            folds[i] = j % k
    return folds


def fold_training_seed(fold: int) -> int:
    """Init and sampler seed of fold `fold`'s training run (the same for every recipe variant)."""
    return 1000 + fold


@dataclass(frozen=True)
class Fold:
    index: int
    train: list[Example]
    val: list[Example]
    """Carved from the training folds, for early stopping only."""
    held_out: list[int]
    """Pool positions this fold's model predicts."""


def make_folds(pool: Sequence[Example], k: int, seed: int = FOLD_SEED) -> list[Fold]:
    folds = stratified_folds([e.label for e in pool], k, seed)
    out = []
    for f in range(k):
        rest = [pool[i] for i in range(len(pool)) if folds[i] != f]
        train, val = carve_validation(rest, seed=100 + f, fraction=0.1)
        if not val:
            raise ValueError(f"fold {f}: too few rows per label to carve an early-stopping validation set")
        out.append(Fold(f, train, val, [i for i in range(len(pool)) if folds[i] == f]))
    return out


def out_of_fold_logits(
    pool: Sequence[Example],
    label_list: Sequence[str],
    config,
    *,
    k: int = 5,
    base_model: str | None = None,
    model_and_tokenizer_factory: Callable[[], tuple] | None = None,
    outlier_texts: Sequence[str] = (),
    progress: bool = False,
    on_fold: Callable[[Fold, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) for every pool row, each predicted by the fold model that did not train on it."""
    from manga_intent.inference import predict_logits
    from manga_intent.training import train_classifier

    index = {label: i for i, label in enumerate(label_list)}
    logits = np.zeros((len(pool), len(label_list)), dtype=np.float32)
    for fold in make_folds(pool, k):
        seed = fold_training_seed(fold.index)
        result = train_classifier(
            fold.train,
            fold.val,
            label_list,
            replace(config, init_seed=seed, sampler_seed=seed),
            base_model=base_model,
            model_and_tokenizer=model_and_tokenizer_factory() if model_and_tokenizer_factory else None,
            progress=progress,
            outlier_texts=outlier_texts,  # the fold models train as the final model does
        )
        held = predict_logits(
            result.model,
            result.tokenizer,
            [pool[i].text for i in fold.held_out],
            max_length=config.max_length,
        )
        logits[fold.held_out] = held
        if on_fold is not None:
            on_fold(fold, held)
    return logits, np.array([index[e.label] for e in pool])
