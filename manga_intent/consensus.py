"""k-fold consensus filtering of synthetic data and confident-learning label-issue detection.

The seed keeps a synthetic example only when k models trained on different folds of the real
pool all agree with its generated label; the rest go to human review. The same k models give
out-of-fold probabilities for every real example, from which confident learning (Northcutt et
al., 2021 — the method behind cleanlab) finds real rows whose given label is likely wrong.

Two fold learners: `finetune` (the seed's: k fine-tuned copies of the base model, minutes each on a CPU)
and `linear_probe` (k logistic regressions on the frozen base encoder's pooled embeddings, computed once:
seconds). `probe_agreement` says how often the cheap learner makes the same keep/flag call, so a user can
choose speed knowing what it costs.
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


#: fold learners `consensus_filter` accepts
CONSENSUS_LEARNERS = ("finetune", "linear_probe")
#: inverse regularisation strengths the probe picks from, per fold, on that fold's inner validation rows
PROBE_C_GRID = (0.1, 1.0, 10.0)


@dataclass
class ConsensusResult:
    kept: list[dict]
    flagged: list[dict]
    per_intent: dict[str, dict]
    oof_probs: np.ndarray
    label_issues: list[dict]
    fold_accuracies: list[float] = field(default_factory=list)
    learner: str = "finetune"
    kept_mask: np.ndarray | None = None
    """Per synthetic row (input order): all k fold models agreed with its generated label."""
    probe_agreement: dict | None = None
    """Filled by `run_quality` when the linear probe was run alongside the fine-tuned folds."""

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
    learner: str = "finetune",
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
    if learner not in CONSENSUS_LEARNERS:
        raise ValueError(f"consensus learner must be one of {CONSENSUS_LEARNERS}, got {learner!r}")
    folds = stratified_folds([e.label for e in real], k, seed)
    oof = np.zeros((len(real), len(label_list)))
    votes = np.zeros((k, len(synthetic)), dtype=int)
    fold_accuracies = []
    synthetic_texts = [row["text"] for row in synthetic]
    fold_learner = (
        _ProbeFeatures.embed(real, synthetic_texts, label_list, base_model, model_factory, config.max_length)
        if learner == "linear_probe"
        else _FineTunedFolds(real, synthetic_texts, label_list, config, base_model, model_factory, progress)
    )
    for fold_number, held_out in enumerate(folds):
        held = set(held_out)
        pool_indices = [i for i in range(len(real)) if i not in held]
        pool = [real[i] for i in pool_indices]
        inner = stratified_split(pool, seed=seed + fold_number, val_fraction=0.1, test_fraction=0.05)
        held_logits, synthetic_logits = fold_learner.fit_predict(fold_number, pool_indices, inner, held_out)
        oof[held_out] = softmax(held_logits)
        fold_acc = float((held_logits.argmax(axis=1) == [index[real[i].label] for i in held_out]).mean())
        fold_accuracies.append(fold_acc)
        if synthetic_texts:
            votes[fold_number] = synthetic_logits.argmax(axis=1)
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
    return ConsensusResult(
        kept, flagged, per_intent, oof, label_issues, fold_accuracies, learner=learner, kept_mask=unanimous
    )


@dataclass
class _FineTunedFolds:
    """The seed's fold learner: a fresh copy of the base model fine-tuned on each fold's pool."""

    real: Sequence[Example]
    synthetic_texts: list[str]
    label_list: list[str]
    config: TrainConfig
    base_model: str | None
    model_factory: Callable[[], tuple] | None
    progress: bool

    def fit_predict(self, fold_number, pool_indices, inner, held_out) -> tuple[np.ndarray, np.ndarray]:
        config = replace(
            self.config,
            init_seed=self.config.init_seed + fold_number,
            sampler_seed=self.config.sampler_seed + fold_number,
        )
        result = train_classifier(
            inner.train + inner.test,
            inner.val,
            self.label_list,
            config,
            base_model=self.base_model,
            model_and_tokenizer=self.model_factory() if self.model_factory else None,
            progress=self.progress,
        )
        max_length = result.config.max_length
        held = [self.real[i].text for i in held_out]
        held_logits = predict_logits(result.model, result.tokenizer, held, max_length=max_length)
        synthetic_logits = (
            predict_logits(result.model, result.tokenizer, self.synthetic_texts, max_length=max_length)
            if self.synthetic_texts
            else np.zeros((0, len(self.label_list)), dtype=np.float32)
        )
        return held_logits, synthetic_logits


@dataclass
class _ProbeFeatures:
    """Frozen pooled embeddings of the real and synthetic rows, standardised, computed once for all folds."""

    examples: list
    n_labels: int
    real: np.ndarray
    synthetic: np.ndarray
    labels: np.ndarray

    @classmethod
    def embed(
        cls, real, synthetic_texts, label_list, base_model, model_factory, max_length
    ) -> _ProbeFeatures:
        from manga_intent.inference import predict_logits_and_features
        from manga_intent.model_io import load_base_for_training

        model, tokenizer = (
            model_factory() if model_factory else load_base_for_training(base_model, label_list)[::-1]
        )  # load_base_for_training returns (tokenizer, model); model factories return (model, tokenizer)
        texts = [e.text for e in real] + list(synthetic_texts)
        _, features = predict_logits_and_features(model, tokenizer, texts, max_length=max_length)
        if features.shape[1] == 0:
            raise ValueError("linear_probe consensus needs a pooled encoder (architecture 'pooled')")
        mean, std = features[: len(real)].mean(axis=0), features[: len(real)].std(axis=0) + 1e-6
        z = (features - mean) / std
        index = {label: i for i, label in enumerate(label_list)}
        labels = np.array([index[e.label] for e in real])
        return cls(list(real), len(label_list), z[: len(real)], z[len(real) :], labels)

    def fit_predict(self, fold_number, pool_indices, inner, held_out) -> tuple[np.ndarray, np.ndarray]:
        """Logistic regression on the fold's pool; C chosen on the pool's inner validation rows."""
        n_labels = self.n_labels
        from sklearn.linear_model import LogisticRegression

        pool = [self.examples[i] for i in pool_indices]
        position = {id(e): i for i, e in zip(pool_indices, pool)}  # the inner split holds the same objects
        fit_rows = [position[id(e)] for e in inner.train + inner.test]
        val_rows = [position[id(e)] for e in inner.val]
        best, best_accuracy = None, -1.0
        for c in PROBE_C_GRID:
            probe = LogisticRegression(C=c, max_iter=2000).fit(self.real[fit_rows], self.labels[fit_rows])
            accuracy = (
                float((probe.predict(self.real[val_rows]) == self.labels[val_rows]).mean())
                if val_rows
                else 0.0
            )
            if accuracy > best_accuracy:
                best, best_accuracy = probe, accuracy
        return _logits(best, self.real[held_out], n_labels), _logits(best, self.synthetic, n_labels)


def _logits(probe, features: np.ndarray, n_labels: int) -> np.ndarray:
    """Log-probabilities over every label (a fold pool can lack a rare label: it gets -inf)."""
    out = np.full((len(features), n_labels), -np.inf, dtype=np.float64)
    if len(features):
        out[:, probe.classes_] = probe.predict_log_proba(features)
    return out
