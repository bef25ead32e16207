"""k-fold consensus filtering of synthetic data and confident-learning label-issue detection.

The seed keeps a synthetic example only when k models trained on different folds of the real
pool all agree with its generated label; the rest go to human review. The same k models give
out-of-fold probabilities for every real example, from which confident learning (Northcutt et
al., 2021 — the method behind cleanlab) finds real rows whose given label is likely wrong.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from manga_intent.data import Example, stratified_split
from manga_intent.inference import predict_logits, softmax
from manga_intent.training import TrainConfig, train_classifier


def stratified_folds(labels: Sequence[str], k: int, seed: int) -> list[list[int]]:
    """k disjoint folds covering every index, each label spread evenly across folds."""
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for label in sorted(by_label):
        members = by_label[label]
        random.Random(f"{seed}:{label}").shuffle(members)
        for j, index in enumerate(members):
            folds[(offset + j) % k].append(index)
        offset += len(members)  # rotate so small labels don't all start in fold 0
    return folds


@dataclass
class ConsensusResult:
    kept: list[dict]
    flagged: list[dict]
    per_intent: dict[str, dict]
    oof_probs: np.ndarray
    label_issues: list[dict]
    fold_accuracies: list[float] = field(default_factory=list)

    def table(self) -> list[dict]:
        return [{"intent": label, **row} for label, row in self.per_intent.items()]


def find_label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Confident-learning label issues, most suspicious first.

    Per-class thresholds t_j = mean p_j over examples labelled j. An example is counted in the
    confident joint at (given i, true j) where j is its most probable class among those with
    p_j >= t_j; off-diagonal entries are label issues, ranked by low self-confidence p_given.
    """
    labels = np.asarray(labels, dtype=int)
    n, k = probs.shape
    thresholds = np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -1.0)
    confident_class = masked.argmax(axis=1)
    has_confident = above.any(axis=1)
    issues = np.where(has_confident & (confident_class != labels))[0]
    self_confidence = probs[np.arange(n), labels]
    return issues[np.argsort(self_confidence[issues], kind="stable")]


def consensus_filter(
    real: Sequence[Example],
    synthetic: Sequence[dict],
    label_list: Sequence[str],
    config: TrainConfig,
    *,
    k: int = 5,
    seed: int = 42,
    base_model: str | None = None,
    model_factory: Callable[[], tuple] | None = None,
    progress: bool = True,
    on_fold_end: Callable[[int, float], None] | None = None,
) -> ConsensusResult:
    """Train k fold models on the real pool; keep synthetic rows all k agree with.

    `synthetic` rows need `text` and `label`; every field is carried through to kept/flagged,
    flagged rows gain `votes` (each model's predicted intent) for reviewers.
    """
    label_list = list(label_list)
    index = {label: i for i, label in enumerate(label_list)}
    unknown = sorted({row["label"] for row in synthetic} - set(index))
    if unknown:
        raise ValueError(f"synthetic labels {unknown} are not in the label set {label_list}")
    folds = stratified_folds([e.label for e in real], k, seed)
    oof = np.zeros((len(real), len(label_list)))
    votes = np.zeros((k, len(synthetic)), dtype=int)
    fold_accuracies = []
    synthetic_texts = [row["text"] for row in synthetic]
    for fold_number, held_out in enumerate(folds):
        held = set(held_out)
        pool = [e for i, e in enumerate(real) if i not in held]
        inner = stratified_split(pool, seed=seed + fold_number, val_fraction=0.1, test_fraction=0.05)
        train_part, val_part = inner.train + inner.test, inner.val
        fold_config = replace(
            config, init_seed=config.init_seed + fold_number, sampler_seed=config.sampler_seed + fold_number
        )
        result = train_classifier(
            train_part,
            val_part,
            label_list,
            fold_config,
            base_model=base_model,
            model_and_tokenizer=model_factory() if model_factory else None,
            progress=progress,
        )
        max_length = result.config.max_length
        held_logits = predict_logits(
            result.model, result.tokenizer, [real[i].text for i in held_out], max_length=max_length
        )
        oof[held_out] = softmax(held_logits)
        fold_acc = float((held_logits.argmax(axis=1) == [index[real[i].label] for i in held_out]).mean())
        fold_accuracies.append(fold_acc)
        if synthetic_texts:
            votes[fold_number] = predict_logits(
                result.model, result.tokenizer, synthetic_texts, max_length=max_length
            ).argmax(axis=1)
        if on_fold_end:
            on_fold_end(fold_number, fold_acc)

    generated = np.array([index[row["label"]] for row in synthetic], dtype=int)
    agree = votes == generated[None, :]
    unanimous = agree.all(axis=0)
    kept, flagged = [], []
    for j, row in enumerate(synthetic):
        if unanimous[j]:
            kept.append(dict(row))
        else:
            flagged.append(
                {
                    **row,
                    "votes": [label_list[v] for v in votes[:, j]],
                    "agreeing_models": int(agree[:, j].sum()),
                }
            )
    per_intent = {}
    for label in label_list:
        mask = generated == index[label]
        per_intent[label] = {
            "generated": int(mask.sum()),
            "kept": int(unanimous[mask].sum()),
            "flagged": int((~unanimous[mask]).sum()),
            "model_agreement": float(agree[:, mask].mean()) if mask.any() else None,
        }
    real_labels = np.array([index[e.label] for e in real])
    issues = find_label_issues(real_labels, oof)
    label_issues = [
        {
            "line": real[i].line,
            "text": real[i].text,
            "given": real[i].label,
            "suggested": label_list[int(oof[i].argmax())],
            "self_confidence": float(oof[i, real_labels[i]]),
            **{k_: v for k_, v in real[i].meta.items() if k_ in ("id", "source")},
        }
        for i in issues
    ]
    return ConsensusResult(kept, flagged, per_intent, oof, label_issues, fold_accuracies)
