import random

import numpy as np
import pytest
from conftest import KEYWORDS, tiny_classifier, tiny_train_config, write_keyword_jsonl

from manga_intent.consensus import consensus_filter, find_label_issues, stratified_folds
from manga_intent.data import load_jsonl
from manga_intent.training import TrainConfig

LABELS = list(KEYWORDS)


def test_stratified_folds_partition_and_balance():
    labels = ["a"] * 50 + ["b"] * 20 + ["c"] * 5
    folds = stratified_folds(labels, 5, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(75))
    for fold in folds:
        assert sum(labels[i] == "a" for i in fold) == 10 and sum(labels[i] == "b" for i in fold) == 4
    assert [len(f) for f in folds] == [15] * 5
    with pytest.raises(ValueError):
        stratified_folds(labels, 1, seed=0)


def test_confident_learning_finds_flipped_labels():
    rng = np.random.default_rng(0)
    n, k = 600, 4
    truth = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), truth] += 4.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(n, 30, replace=False)
    given[flipped] = (truth[flipped] + 1) % k
    issues = find_label_issues(given, probs)
    found = set(issues.tolist())
    recall = len(found & set(flipped.tolist())) / 30
    precision = len(found & set(flipped.tolist())) / max(len(found), 1)
    assert recall >= 0.8 and precision >= 0.9
    self_conf = probs[issues, given[issues]]
    assert list(self_conf) == sorted(self_conf)  # most suspicious first


def test_consensus_keeps_agreed_and_flags_mislabelled_synthetic(tmp_path, tokenizer):
    real = load_jsonl(write_keyword_jsonl(tmp_path / "real.jsonl", n=320)).examples
    rng = random.Random(1)
    synthetic = []
    for i in range(40):
        label = LABELS[i % 4]
        text = f"{rng.choice(KEYWORDS[label])} please today"
        wrong = LABELS[(i + 1) % 4] if i < 8 else label  # the first 8 carry a wrong generated label
        synthetic.append({"text": f"{text} {i}", "label": wrong, "segment": ["plain"]})
    config = tiny_train_config()
    result = consensus_filter(
        real,
        synthetic,
        LABELS,
        config,
        k=3,
        seed=0,
        model_factory=lambda: (tiny_classifier("bert", 4), tokenizer),
        progress=False,
    )
    flagged_texts = {r["text"] for r in result.flagged}
    assert {s["text"] for s in synthetic[:8]} <= flagged_texts
    assert len(result.kept) >= 28
    assert all(len(r["votes"]) == 3 and r["agreeing_models"] < 3 for r in result.flagged)
    assert sum(row["kept"] + row["flagged"] for row in result.per_intent.values()) == 40
    assert result.oof_probs.shape == (320, 4) and np.allclose(result.oof_probs.sum(axis=1), 1)
    assert min(result.fold_accuracies) >= 0.9
    assert result.kept[0].keys() >= {"text", "label", "segment"}


def test_quality_runner_writes_review_files(tmp_path, tokenizer):
    import json

    from manga_intent.shipped_data import SEED_CORPUS
    from manga_intent.synthetic.quality import drop_collisions, run_quality, write_quality_outputs
    from manga_intent.taxonomy import INTENTS

    real = load_jsonl(SEED_CORPUS.path).examples[:400]
    config = TrainConfig(epochs=1, lr=3e-3, batch_size=32)
    result, synthetic, dropped = run_quality(
        real,
        60,
        seed=3,
        k=2,
        config=config,
        progress=False,
        model_factory=lambda: (tiny_classifier("bert", len(INTENTS)), tokenizer),
    )
    summary = write_quality_outputs(result, tmp_path, dropped=dropped, synthetic=synthetic)
    assert summary["kept"] + summary["flagged"] == len(synthetic) == 60 - dropped
    review = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    assert len(review) == summary["flagged"] and all("votes" in r for r in review)
    assert "| intent | generated | kept | flagged |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "audit_sample.md").read_text().count("\n|") >= 50
    usable, colliding = drop_collisions(
        [{"text": "Tell me a MANGA joke, i need a laugh today!"}, {"text": "zz"}],
        {"tellmeamangajokeineedalaughtoday"},
    )
    assert len(usable) == 1 and len(colliding) == 1


def test_linear_probe_consensus_flags_the_mislabelled_rows_in_seconds(tmp_path, tokenizer):
    """The cheap learner: one frozen embedding pass, then k logistic regressions (C chosen per fold on
    the fold's inner validation rows); same contract as the fine-tuned folds."""
    real = load_jsonl(write_keyword_jsonl(tmp_path / "real.jsonl", n=320)).examples
    rng = random.Random(1)
    synthetic = []
    for i in range(40):
        label = LABELS[i % 4]
        wrong = LABELS[(i + 1) % 4] if i < 8 else label
        synthetic.append({"text": f"{rng.choice(KEYWORDS[label])} please today {i}", "label": wrong})
    factory_calls = []

    def factory():
        factory_calls.append(1)
        return tiny_classifier("bert", 4), tokenizer

    result = consensus_filter(
        real,
        synthetic,
        LABELS,
        tiny_train_config(),
        k=3,
        seed=0,
        model_factory=factory,
        learner="linear_probe",
    )
    assert len(factory_calls) == 1  # embedded once, not once per fold
    assert result.learner == "linear_probe" and result.kept_mask.shape == (40,)
    # a frozen random tiny encoder gives weak features (fine-tuned folds reach >= 0.9 on these rows): the probe
    # must learn the signal (chance is 0.25) and flag most wrong rows; its real-model quality is what
    # `probe_agreement` reports next to the fine-tuned folds
    caught = {s["text"] for s in synthetic[:8]} & {r["text"] for r in result.flagged}
    assert len(caught) >= 6, caught
    assert len(result.kept) >= 20 and min(result.fold_accuracies) >= 0.7, result.fold_accuracies
    assert result.oof_probs.shape == (320, 4) and np.allclose(result.oof_probs.sum(axis=1), 1)
    with pytest.raises(ValueError, match="consensus learner must be one of"):
        consensus_filter(real, synthetic, LABELS, tiny_train_config(), k=3, learner="svm")


def test_probe_agreement_compares_keep_calls():
    from manga_intent.consensus import ConsensusResult
    from manga_intent.synthetic.quality import probe_agreement

    def result(mask, accuracy):
        return ConsensusResult([], [], {}, np.zeros((0, 2)), [], [accuracy], kept_mask=np.array(mask))

    report = probe_agreement(result([1, 1, 0, 0], 0.9), result([1, 0, 0, 0], 0.8))
    assert report["decision_agreement"] == 0.75 and report["kept_by_both"] == 1
    assert report["cohen_kappa"] == pytest.approx((0.75 - 0.5) / 0.5)
    assert report["probe_fold_accuracy"] == 0.8
