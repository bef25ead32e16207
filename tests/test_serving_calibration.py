"""Outlier exposure in training, the serving calibration fitted on validation, and the compiled artifact
carrying it (tiny random encoders on a keyword task)."""

import numpy as np
import pytest
import torch
from conftest import tiny_classifier, write_keyword_jsonl

from manga_intent.calibrator_fit import (
    ServingCalibration,
    build_ood_pools,
    eager_outputs,
    fit_serving_calibration,
    load_ood_rows,
    score_outputs,
)
from manga_intent.compiled import CompiledClassifier, compile_classifier
from manga_intent.data import load_jsonl, make_splits
from manga_intent.loss import uniform_target_loss
from manga_intent.training import TrainConfig, train_classifier

# out-of-scope text that shares the keywords of the tiny task (so a plain model is confidently wrong on it)
OOD_TEXTS = [
    f"{word} {topic}"
    for word in ("horror", "dark", "order", "package", "refund", "broken", "hello", "thanks")
    for topic in ("movie tickets tonight", "weather in paris", "flight to lisbon", "bread recipe")
]
OOD_VAL = [
    "seinen swimming lessons",
    "shipped crates of bananas",
    "return flight to oslo",
    "hi-fi speakers",
    "gothic cathedral tour",
    "parcel locker rental prices",
    "cracked windscreen quote",
    "bye week schedule",
]
OOD_TEST = [
    "berserk spin class timetable",
    "tracking a hurricane",
    "damaged roof insurance",
    "hello kitty bag",
]
FAST = dict(
    epochs=8,
    lr=3e-3,
    max_steps=None,
    batch_size=16,
    freeze_word_embeddings=False,
    head_lr_multiplier=1.0,
    lr_decay=0.9,
    adversarial_weight=0.0,  # outlier exposure and calibration alone (adversarial training: test_robustness)
)


def test_uniform_target_loss_is_smallest_for_flat_logits():
    assert uniform_target_loss(torch.zeros(3, 5)).item() == pytest.approx(np.log(5), abs=1e-6)
    assert uniform_target_loss(torch.tensor([[5.0, 0, 0]])).item() > np.log(3) + 1.0
    with pytest.raises(ValueError, match="outlier_exposure_weight"):
        TrainConfig(outlier_exposure_weight=-1).validate()


@pytest.fixture(scope="module")
def keyword(tmp_path_factory):
    examples = load_jsonl(write_keyword_jsonl(tmp_path_factory.mktemp("k") / "k.jsonl", n=320)).examples
    return make_splits(examples, seed=0), sorted({e.label for e in examples})


def _train(keyword, tokenizer, **config):
    splits, labels = keyword
    return train_classifier(
        splits.train,
        splits.val,
        labels,
        TrainConfig(**{**FAST, **config}),
        model_and_tokenizer=(tiny_classifier("bert", len(labels)), tokenizer),
        progress=False,
        outlier_texts=OOD_TEXTS if config.get("outlier_exposure_weight") else (),
    )


@pytest.fixture(scope="module")
def exposed(keyword, tokenizer):
    return _train(keyword, tokenizer, outlier_exposure_weight=1.0)


def test_outlier_exposure_flattens_predictions_on_out_of_scope_text(keyword, tokenizer, exposed):
    plain = _train(keyword, tokenizer)
    held_out_ood = [
        "seinen football results",
        "tracking my running pace",
        "damaged car insurance quote",
        "bye bye birdie musical",
        "berserk dance class",
    ]

    def mean_top(result):
        logits = eager_outputs(result.model, tokenizer, held_out_ood).logits
        p = np.exp(logits - logits.max(1, keepdims=True))
        return float((p / p.sum(1, keepdims=True)).max(1).mean())

    assert mean_top(exposed) < mean_top(plain) - 0.05
    assert any("outlier exposure" in note for note in exposed.notes)
    splits, labels = keyword
    unexposed = train_classifier(
        splits.train,
        splits.val,
        labels,
        TrainConfig(outlier_exposure_weight=0.5, max_steps=2, min_epochs=0.0, bf16="off"),
        model_and_tokenizer=(tiny_classifier("bert", len(labels)), tokenizer),
        progress=False,
    )
    # without out-of-scope texts the default exposure is off, said in the notes and in the config that ran
    assert unexposed.config.outlier_exposure_weight == 0.0
    assert "outlier exposure off: no out-of-scope texts were given" in unexposed.notes


def test_adversarial_augmentation_adds_attacked_rows(keyword, tokenizer):
    result = _train(keyword, tokenizer, adversarial_augmentation=0.5, epochs=1)
    assert any("adversarial augmentation" in note for note in result.notes)


@pytest.fixture(scope="module")
def calibrated(keyword, tokenizer, exposed):
    splits, labels = keyword
    result = exposed
    fitted = fit_serving_calibration(
        result.model,
        tokenizer,
        labels,
        train=splits.train,
        val=splits.val,
        ood_val_texts=OOD_VAL,
        max_length=64,
    )
    return result.model, fitted


def test_serving_calibration_is_fitted_on_validation_and_round_trips(
    calibrated, keyword, tokenizer, tmp_path
):
    model, fitted = calibrated
    splits, labels = keyword
    assert fitted.calibrator.family in ("temperature", "bias", "vector")
    assert fitted.detector_selection["table"] and fitted.calibrator_choice["table"]
    assert fitted.validation["ood"]["in_domain_flag_rate"] <= 0.05
    files = fitted.save(tmp_path)
    assert {"calibrator.json", "ood_detector.json", "routing.json"} <= set(files)
    loaded = ServingCalibration.load(tmp_path)
    assert loaded.detector.kind == fitted.detector.kind and loaded.policy == fitted.policy
    index = {label: i for i, label in enumerate(labels)}
    report = score_outputs(
        loaded,
        eager_outputs(model, tokenizer, [e.text for e in splits.test], max_length=64),
        np.array([index[e.label] for e in splits.test]),
        labels,
        ood=eager_outputs(model, tokenizer, OOD_TEST, max_length=64),
        ood_categories=["x"] * 4,
    )
    for key in ("auroc", "aupr", "fpr_at_95_tpr", "tpr_at_threshold", "in_domain_flag_rate", "per_category"):
        assert key in report["ood"]
    rc = report["risk_coverage"]
    assert {"aurc_joint", "coverage", "selective_risk", "clarify_below", "curve_points"} <= set(rc)
    assert report["accuracy"] > 0.8 and 0 <= report["classwise_ece"] <= 1


def test_compiled_artifact_computes_the_same_scores_and_routes(calibrated, tokenizer, tmp_path):
    model, fitted = calibrated
    manifest = compile_classifier(
        model,
        tokenizer,
        tmp_path,
        labels=["alpha", "beta", "delta", "gamma"],
        calibration=fitted,
        backend="onnx",
        max_length=64,
    )
    assert manifest["serving_calibration"]["ood_detector"] == fitted.detector.kind
    compiled = CompiledClassifier(tmp_path)
    texts = ["where is my order tracking", "horror berserk please", *OOD_TEST]
    eager = eager_outputs(model, tokenizer, texts, max_length=64)
    assert np.allclose(
        compiled.calibration.ood_scores(compiled.outputs(texts)),
        fitted.ood_scores(eager),
        rtol=1e-3,
        atol=1e-3,
    )
    predictions = compiled.classify(texts)
    expected_routes = fitted.policy.decide(
        fitted.probabilities(eager.logits).max(1), fitted.ood_scores(eager)
    )
    assert [p.route for p in predictions] == expected_routes.tolist()
    for p in predictions:
        assert p.ood_detector == fitted.detector.kind and p.is_ood == (p.route == "fallback")
        assert p.confidence == pytest.approx(p.top[0]["confidence"])


def test_pools_keep_training_and_validation_text_apart():
    rows = [{"text": f"weather question {i}", "category": "off_topic"} for i in range(10)]
    pools = build_ood_pools(rows, generated_train=50, generated_val=25)
    assert not set(pools.train_texts) & set(pools.val_texts)
    assert pools.sources["fitting_rows_train"] == 5 and len(pools.val_categories) == len(pools.val_texts)
    with pytest.raises(ValueError, match="no text"):
        build_ood_pools([{"text": "  "}])


def test_ood_file_errors_name_their_lines(tmp_path):
    path = tmp_path / "ood.jsonl"
    path.write_text('{"text": "book a flight", "label": "x"}\nnot json\n{"txt": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2.*line 3"):
        load_ood_rows(path)
    path.write_text('{"text": "book a flight", "label": "ignored"}\n', encoding="utf-8")
    assert load_ood_rows(path) == [{"text": "book a flight", "category": "unknown"}]


def test_the_held_out_ood_half_never_reaches_training_or_fitting(monkeypatch, tmp_path, tiny_base_dir):
    """`manga-intent train` fits everything with the held-out OOD half (and the golden set) unreadable."""
    from manga_intent import cli, shipped_data
    from manga_intent.data import clean_text

    held = {clean_text(r["text"]) for r in shipped_data.ood_heldout_pool()}
    pools = build_ood_pools(shipped_data.ood_fitting_pool())
    assert not held & set(pools.train_texts) and not held & set(pools.val_texts)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("a fitting path read held-out data")

    half = shipped_data._ood_half
    monkeypatch.setattr(shipped_data, "ood_heldout_pool", forbidden)
    monkeypatch.setattr(
        shipped_data, "_ood_half", lambda parity: forbidden() if parity == 1 else half(parity)
    )
    original_read = shipped_data.read_rows
    monkeypatch.setattr(
        shipped_data,
        "read_rows",
        lambda path: forbidden() if path == shipped_data.GOLDEN.path else original_read(path),
    )
    data = write_keyword_jsonl(tmp_path / "k.jsonl", n=120)
    out = tmp_path / "model"
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(out),
                "--base-model",
                str(tiny_base_dir),
                "--epochs",
                "1",
                "--bootstrap",
                "0",
                "--outlier-exposure-weight",
                "0.5",
            ]
        )
        == 0
    )
    assert ServingCalibration.exists(out)
