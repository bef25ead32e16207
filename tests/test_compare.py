"""Comparative-methods core: every method runs end to end on a tiny model; the statistics are right."""

import json
import random

import numpy as np
import pytest
from conftest import tiny_pooled_classifier

from manga_intent import compare
from manga_intent.data import Example, make_splits
from manga_intent.training import TrainConfig

LABELS = ["common", "mid", "rare"]
OUTLIERS = ["concert tickets tonight", "what is the weather", "asdf qwer", "tell me a joke please"]
WORDS = {"common": ["order", "package"], "mid": ["refund", "return"], "rare": ["human", "agent"]}


def imbalanced_examples(n=300, seed=0):
    rng = random.Random(seed)
    shares = [("common", 0.6), ("mid", 0.37), ("rare", 0.03)]
    rows = []
    for label, share in shares:
        for i in range(max(12, int(n * share))):
            rows.append(
                Example(
                    f"{rng.choice(WORDS[label])} please {rng.choice(['now', 'today', 'soon'])} {i}", label
                )
            )
    return rows


@pytest.fixture(scope="module")
def grid(tokenizer):
    splits = make_splits(imbalanced_examples(), seed=42)
    base = TrainConfig(
        lr=3e-3,
        batch_size=16,
        max_steps=6,
        min_epochs=0.0,
        eval_every=3,
        head_lr_multiplier=1.0,
        freeze_word_embeddings=False,
    )
    cache = compare.OutputCache(None)
    records = [
        compare.run_method(
            m,
            s,
            splits,
            LABELS,
            base_config=base,
            cache=cache,
            latency_messages=8,
            model_and_tokenizer_factory=lambda s=s: (tiny_pooled_classifier(3, seed=s), tokenizer),
            outlier_texts=OUTLIERS,
        )
        for s in (1, 2)
        for m in compare.METHODS
    ]
    return splits, records


def test_every_method_scores_the_test_split(grid):
    splits, records = grid
    assert {r["method"] for r in records} == set(compare.METHODS)
    for r in records:
        assert r["n_test"] == len(splits.test) and len(r["predictions"]) == len(splits.test)
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece_calibrated"] <= 1 and r["p95_latency_ms"] > 0
        assert set(r["per_rare_intent_accuracy"]) == {"rare"}
    plain = {r["seed"]: r for r in records if r["method"] == "plain_ce"}
    moved = {r["seed"]: r for r in records if r["method"] == "threshold_moving"}
    assert all(
        plain[s]["train_seconds"] == moved[s]["train_seconds"] for s in plain
    )  # same stage-1 run, reused
    assert compare.cache_key("two_stage", 1, "v") == compare.cache_key("plain_ce", 1, "v")
    assert compare.cache_key("label_smoothing", 1, "v") != compare.cache_key("plain_ce", 1, "v")
    assert compare.cache_key("recipe_v2", 1, "v") != compare.cache_key("plain_ce", 1, "v")
    reference = {r["seed"]: r for r in records if r["method"] == "recipe_v2"}
    assert all(reference[s]["train_seconds"] != plain[s]["train_seconds"] for s in plain)  # its own run
    assert (
        reference[1]["config"]["outlier_exposure_weight"] > 0
        and reference[1]["config"]["adversarial_weight"] > 0
    )
    assert len({r["setup"] for r in records}) == 1  # one grid, one setup
    assert json.dumps(records)  # JSON-able for the results file


def test_runs_of_another_base_model_or_default_rate_are_never_reused(monkeypatch, tmp_path):
    from manga_intent import training

    base = TrainConfig(max_steps=6)
    setup = compare.setup_key(base, None)
    assert setup == compare.setup_key(base, "packaged") == compare.setup_key(base, "all-MiniLM-L6-v2")
    assert setup == compare.setup_key(
        TrainConfig(max_steps=6, init_seed=9, sampler_seed=9), None
    )  # seeds aside
    assert setup != compare.setup_key(base, str(tmp_path))  # another base model
    assert setup != compare.setup_key(TrainConfig(max_steps=7), None)  # another budget
    assert setup != compare.setup_key(base, None, ["another out-of-scope pool"])  # what v2's exposure saw
    key = compare.cache_key("plain_ce", 1, "v", base)
    assert key != compare.cache_key("plain_ce", 1, "v", base, str(tmp_path))
    assert key != compare.cache_key("plain_ce", 1, "other", base)
    pinned = TrainConfig(max_steps=6, lr=1e-4)
    pinned_setup = compare.setup_key(pinned, None)
    # the default-rate table changes what lr=None trains, so it changes the setup; a pinned rate does not care
    monkeypatch.setattr(training, "RECIPE_V2_LR_BY_HIDDEN_SIZE", ((512, 9e-4), (10**9, 3e-5)))
    assert compare.setup_key(base, None) != setup
    assert compare.cache_key("plain_ce", 1, "v", base) != key
    assert compare.setup_key(pinned, None) == pinned_setup


def test_methods_differ_only_in_imbalance_handling():
    configs = {m: compare.method_config(m, 3) for m in compare.TRAINED_METHODS}
    assert configs["class_weighted_ce"].class_weighting and not configs["plain_ce"].class_weighting
    assert configs["oversampling"].oversample and configs["label_smoothing"].label_smoothing == 0.1
    assert configs["focal_class_weights"].loss == "focal" and configs["focal_class_weights"].gamma == 2.0
    budgets = {(c.max_steps, c.lr, c.batch_size, c.pooling, c.init_seed) for c in configs.values()}
    assert len(budgets) == 1  # same budget, backbone and seed
    # plain fine-tunes on that backbone: recipe v2's outlier exposure and adversarial training are its own
    assert all(c.outlier_exposure_weight == 0 and c.adversarial_weight == 0 for c in configs.values())
    reference = compare.method_config("recipe_v2", 3)
    assert reference == TrainConfig(init_seed=3, sampler_seed=3)
    assert reference.outlier_exposure_weight > 0 and reference.adversarial_weight > 0


def test_summary_table_and_paired_tests(grid):
    splits, records = grid
    summary = compare.summarize(records, compare.labels_of_test_split(splits, LABELS), n_boot=300)
    assert [row["method"] for row in summary["methods"]] == list(compare.METHODS)
    assert set(summary["tests_vs_recipe_v2"]) == set(compare.METHODS) - {"recipe_v2"}
    table = compare.markdown_table(summary)
    assert "separated?" in table and "rare acc" in table and table.count("\n") == len(compare.METHODS) + 1


def test_seed_ensemble_averages_logits_of_disjoint_seed_groups(tokenizer):
    splits = make_splits(imbalanced_examples(), seed=42)
    cache = compare.OutputCache(None)
    rng = np.random.default_rng(0)
    for s in (1, 2, 3, 4):
        cache.put(
            compare.cache_key("recipe_v2", s, "version"),
            {
                "val_logits": rng.normal(size=(len(splits.val), 3)),
                "test_logits": rng.normal(size=(len(splits.test), 3)),
                "latency_ms": np.full(10, 2.0),
            },
        )
    ensemble = compare.seed_ensemble(cache, splits, LABELS, [1, 2, 3, 4], data_version="version", size=2)
    assert [g["seeds"] for g in ensemble["groups"]] == [[1, 2], [3, 4]]
    assert ensemble["groups"][0]["p95_latency_ms"] == pytest.approx(4.0)  # members run one after another


def test_holm_mcnemar_bootstrap():
    assert compare.holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert compare.mcnemar_exact(0, 0) == 1.0
    assert compare.mcnemar_exact(0, 10) == pytest.approx(2 * 0.5**10)
    candidate = np.array([True] * 8 + [False] * 2)  # right where the base is wrong on 0 rows, wrong on 2
    base = np.ones(10, dtype=bool)
    assert compare.mcnemar_one_sided(candidate, base) == (0, 2, pytest.approx(0.25))  # P(X <= 0 | n=2)
    assert compare.mcnemar_one_sided(base, candidate) == (2, 0, 1.0)
    same = np.ones((3, 50), dtype=bool)
    assert compare.paired_bootstrap(same, same, n_boot=200)["p_value"] == 1.0
    better = np.ones((3, 200), dtype=bool)
    worse = better.copy()
    worse[:, :60] = False
    result = compare.paired_bootstrap(better, worse, n_boot=500)
    assert result["difference"] == pytest.approx(0.3) and result["p_value"] < 0.01
    assert compare.mean_ci([1.0, 1.0, 1.0]) == (1.0, 0.0)
    mean, half = compare.mean_ci([0.9, 0.92, 0.94])
    assert mean == pytest.approx(0.92) and half == pytest.approx(4.303 * 0.02 / 3**0.5, rel=1e-3)


def test_threshold_moving_recovers_a_suppressed_class():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    logits = np.eye(3)[y] * 2.0 + rng.normal(0, 0.5, (300, 3))
    logits[:, 2] -= 3.0  # class 2 systematically under-scored
    offsets = compare.fit_logit_offsets(logits, y, 3)
    from manga_intent.metrics import macro_f1

    before = macro_f1(y, logits.argmax(1), 3)
    after = macro_f1(y, (np.log(compare.softmax(logits)) + offsets).argmax(1), 3)
    assert after > before + 0.2


def test_two_stage_probabilities_are_a_distribution():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    labels = np.array([0] * 30 + [1] * 20 + [2] * 10)
    features[labels == 2] += 3.0
    head = compare.fit_rare_head(features, labels, [2], seed=0)
    log_p = compare.two_stage_log_probs(rng.normal(size=(60, 3)), head, features, [2])
    assert np.allclose(np.exp(log_p).sum(axis=1), 1.0, atol=1e-6)
    assert (np.exp(log_p)[labels == 2, 2] > 0.5).mean() > 0.8
