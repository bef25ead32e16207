"""Cross-fitting: stratified folds, every pool row predicted once by a model that never saw it."""

import numpy as np
import pytest
from conftest import KEYWORDS, tiny_pooled_classifier, write_keyword_jsonl

from manga_intent.crossfit import make_folds, out_of_fold_logits, stratified_folds
from manga_intent.data import load_jsonl
from manga_intent.metrics import debiased_calibration_error, ece_noise_floor, expected_calibration_error
from manga_intent.training import TrainConfig

LABELS = list(KEYWORDS)


def test_folds_are_stratified_and_disjoint():
    labels = ["a"] * 43 + ["b"] * 200 + ["c"] * 7
    folds = stratified_folds(labels, 5)
    for label, n in (("a", 43), ("b", 200), ("c", 7)):
        counts = np.bincount(folds[np.array(labels) == label], minlength=5)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert np.array_equal(folds, stratified_folds(labels, 5))  # seeded


def test_every_pool_row_is_predicted_by_the_fold_that_held_it_out(tmp_path, tokenizer):
    pool = load_jsonl(write_keyword_jsonl(tmp_path / "kw.jsonl", n=120)).examples
    folds = make_folds(pool, 3)
    held = sorted(i for f in folds for i in f.held_out)
    assert held == list(range(len(pool)))
    for f in folds:
        trained_on = {e.text for e in [*f.train, *f.val]}
        assert not trained_on & {pool[i].text for i in f.held_out}
    seen = []
    config = TrainConfig(
        lr=3e-3,
        batch_size=16,
        max_steps=40,
        min_epochs=0.0,
        head_lr_multiplier=1.0,
        freeze_word_embeddings=False,
    )
    logits, labels = out_of_fold_logits(
        pool,
        LABELS,
        config,
        k=3,
        model_and_tokenizer_factory=lambda: (tiny_pooled_classifier(4), tokenizer),
        on_fold=lambda fold, held_logits: seen.append((fold.index, held_logits.shape[0])),
    )
    assert seen == [(f.index, len(f.held_out)) for f in folds]
    assert logits.shape == (120, 4) and np.all(np.abs(logits).sum(axis=1) > 0)
    assert (logits.argmax(1) == labels).mean() > 0.6  # chance: 0.25


def test_debiased_error_and_noise_floor_tell_noise_from_miscalibration():
    rng = np.random.default_rng(1)
    n = 400
    confidence = rng.uniform(0.6, 1.0, n)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    calibrated = np.where(rng.random(n) < confidence, 0, 1)
    floor = ece_noise_floor(probs, n_sim=500)
    assert floor["n"] == n and 0 < floor["mean"] < floor["p95"] < 0.1
    assert expected_calibration_error(probs, calibrated) < floor["p95"]
    assert debiased_calibration_error(probs, calibrated) < 0.03
    overconfident = np.where(rng.random(n) < confidence - 0.2, 0, 1)
    assert expected_calibration_error(probs, overconfident) > floor["p95"]
    assert debiased_calibration_error(probs, overconfident) > 0.15


def test_noise_floor_in_blocks_equals_one_draw_and_keeps_memory_bounded():
    """On many rows the simulations run in blocks; the generator stream, hence the result, is unchanged."""
    rng = np.random.default_rng(2)
    n, n_sim = 5000, 450  # blocks of 200 simulations: 200 + 200 + 50
    confidence = rng.uniform(0.5, 1.0, n)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    bins = np.clip(np.ceil(confidence * 15).astype(int) - 1, 0, 14)
    draws = np.random.default_rng(0).random((n_sim, n)) < confidence  # the one-shot reference
    eces = np.zeros(n_sim)
    for b in np.unique(bins):
        mask = bins == b
        eces += mask.mean() * np.abs(draws[:, mask].mean(axis=1) - confidence[mask].mean())
    floor = ece_noise_floor(probs, n_sim=n_sim, seed=0)
    assert floor["mean"] == pytest.approx(eces.mean(), abs=1e-12)
    assert floor["p95"] == pytest.approx(np.percentile(eces, 95), abs=1e-12)
    assert "share_at_or_below_bound" not in floor
    at_median = ece_noise_floor(probs, n_sim=n_sim, seed=0, bound=float(np.median(eces)))
    assert at_median["share_at_or_below_bound"] == pytest.approx((eces <= np.median(eces)).mean())
    assert ece_noise_floor(probs, n_sim=n_sim, seed=0, bound=1.0)["share_at_or_below_bound"] == 1.0
