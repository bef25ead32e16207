"""Train-and-evaluate on a labelled file: what the CLI and the Dagster assets both call.

After training, the temperature is fitted on the validation split (`calibrate_on_validation`, the
same function the Dagster `calibrator` asset uses) and written into the model directory, so
`predict` and `evaluate` report calibrated probabilities out of the box. With `calibration="cv"` it is
fitted instead on the out-of-fold logits of the whole train + val pool (`manga_intent.crossfit`: k extra
trainings, k x more rows for the one parameter); the validation-only fit is reported beside it.
"""

from __future__ import annotations

import platform
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from manga_intent import __version__
from manga_intent.calibration import calibrate_on_validation, calibration_scores, fit_temperature
from manga_intent.coverage import tokenizer_coverage
from manga_intent.data import DataSplits, Example, data_hash, label_shares
from manga_intent.distributed import DataParallel
from manga_intent.inference import predict_logits, softmax
from manga_intent.metrics import (
    classification_report,
    classwise_ece,
    debiased_calibration_error,
    ece_noise_floor,
    rare_labels_from_shares,
)
from manga_intent.model_io import resolve_base_model, save_model, write_calibration
from manga_intent.taxonomy import RARE_SHARE_THRESHOLD
from manga_intent.training import TrainConfig, TrainResult, train_classifier


def segment_accuracy(examples: Sequence[Example], predicted: Sequence[str]) -> dict[str, dict]:
    """Accuracy per `segment` tag (rows with several tags count in each), when rows carry segments."""
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for example, label in zip(examples, predicted):
        value = example.meta.get("segment") if example.meta else None
        if value is None:
            continue
        for segment in [value] if isinstance(value, str) else value:
            hits[segment][0] += int(label == example.label)
            hits[segment][1] += 1
    return {s: {"accuracy": c / n, "n": n} for s, (c, n) in sorted(hits.items())}


HEADLINE_METRIC_KEYS = (
    "n",
    "accuracy",
    "macro_f1",
    "rare_class_accuracy",
    "ece",
    "ece_uncalibrated",
    "nll",
    "nll_uncalibrated",
)
"""The scores repeated for the validation split in metrics.json and written into the model card."""


def evaluate_examples(
    model,
    tokenizer,
    examples: Sequence[Example],
    label_list: Sequence[str],
    *,
    rare_labels: Sequence[str],
    max_length: int = 128,
    n_boot: int = 1000,
    seed: int = 0,
    temperature: float = 1.0,
    calibrator=None,
) -> dict:
    """Full metric report of `model` on `examples` (labels must be in `label_list`).

    Probabilities are divided by `temperature` (the model's calibrated one), or mapped by `calibrator`
    (a `calibrators.Calibrator`, e.g. vector scaling) when given; the uncalibrated ECE, NLL and Brier are
    reported beside the calibrated ones.
    """
    index = {label: i for i, label in enumerate(label_list)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise ValueError(f"evaluation labels {unknown} are not in the model's label set {list(label_list)}")
    if not examples:
        raise ValueError("no rows to evaluate")
    logits = predict_logits(model, tokenizer, [e.text for e in examples], max_length=max_length)
    y = np.array([index[e.label] for e in examples])
    probs = calibrator.probabilities(logits) if calibrator is not None else softmax(logits, temperature)
    if calibrator is not None:
        temperature = calibrator.temperature
    report = classification_report(
        y, probs, list(label_list), rare_labels=rare_labels, n_boot=n_boot, seed=seed
    )
    scores = calibration_scores(logits, y, temperature)
    report.update({k: scores[k] for k in ("ece_uncalibrated", "nll_uncalibrated", "brier_uncalibrated")})
    report["temperature"] = float(temperature)
    report["ece_debiased_l2"] = debiased_calibration_error(probs, y)
    report["ece_noise_floor"] = ece_noise_floor(probs)
    if calibrator is not None:
        report["calibrator"] = calibrator.family
        report["classwise_ece"] = classwise_ece(probs, y)["mean"]
    report["per_rare_intent_accuracy"] = {
        label: report["per_intent"][label]["recall"]
        for label in report["rare_intents"]
        if report["per_intent"][label]["support"] > 0
    }
    segments = segment_accuracy(examples, [label_list[i] for i in probs.argmax(axis=1)])
    if segments:
        report["segment_accuracy"] = segments
    return report


def run_training(
    splits: DataSplits,
    label_list: Sequence[str],
    config: TrainConfig,
    *,
    base_model: str | None,
    out_dir: str | Path | None = None,
    rare_threshold: float = RARE_SHARE_THRESHOLD,
    n_boot: int = 1000,
    progress: bool = True,
    model_and_tokenizer: tuple | None = None,
    extra_card: dict | None = None,
    calibration: str = "val",
    calibration_folds: int = 5,
    model_and_tokenizer_factory=None,
    ood_pools=None,
    serving_options: dict | None = None,
    parallel: DataParallel | None = None,
) -> tuple[TrainResult, dict, dict]:
    """Train, calibrate (on val, or on out-of-fold logits of train + val), score val and (when there are
    test rows) test, optionally save. `model_and_tokenizer_factory` builds the fold models of
    `calibration="cv"` when `model_and_tokenizer` is given (tests).

    Returns (result, metrics, card). metrics' top-level scores are the test split's, or the
    validation split's when the data has no test rows (`split` says which).

    With `ood_pools` (`calibrator_fit.OODPools`) the model is trained with outlier exposure on
    `ood_pools.train_texts` (when `config.outlier_exposure_weight > 0`) and the whole serving calibration
    (calibrator family, OOD detector, routing policy; `calibrator_fit.fit_serving_calibration`) is fitted on
    the validation split and `ood_pools.val_texts` and written into the model directory; the reported
    calibrated scores are then that calibrator's.

    Under torchrun (`parallel`), every rank trains and rank 0 alone calibrates, scores and saves; the other
    ranks return ({}, {}) after training.
    """
    if calibration not in ("val", "cv"):
        raise ValueError(f"calibration must be val or cv (got {calibration!r})")
    if calibration == "cv" and ood_pools is not None:
        # the serving calibration (calibrator family + OOD detector + routing) is fitted on val and would
        # override the cross-fitted temperature in every reported probability
        raise ValueError("calibration='cv' fits one temperature without OOD pools; pass ood_pools=None")
    started = time.perf_counter()
    result = train_classifier(
        splits.train,
        splits.val,
        label_list,
        config,
        base_model=base_model,
        model_and_tokenizer=model_and_tokenizer,
        progress=progress,
        outlier_texts=ood_pools.train_texts if ood_pools is not None else (),
        parallel=parallel,
    )
    if parallel is not None and not parallel.is_main:
        return result, {}, {}
    serving = None
    if ood_pools is not None:
        from manga_intent.calibrator_fit import fit_serving_calibration

        serving = fit_serving_calibration(
            result.model,
            result.tokenizer,
            label_list,
            train=splits.train,
            val=splits.val,
            ood_val_texts=ood_pools.val_texts,
            max_length=result.config.max_length,
            **(serving_options or {}),
        )
    fit = val_fit = calibrate_on_validation(
        result.model, result.tokenizer, splits.val, label_list, max_length=result.config.max_length
    )
    fitted_on = "val"
    if calibration == "cv":
        from manga_intent.crossfit import out_of_fold_logits

        pool = [*splits.train, *splits.val]
        oof, oof_labels = out_of_fold_logits(
            pool,
            label_list,
            result.config,
            k=calibration_folds,
            base_model=base_model,
            model_and_tokenizer_factory=model_and_tokenizer_factory,
            outlier_texts=ood_pools.train_texts if ood_pools is not None else (),
            progress=False,
        )
        fit = fit_temperature(oof, oof_labels)
        fitted_on = f"out-of-fold logits of train+val ({len(pool)} rows, {calibration_folds}-fold)"
    shares = label_shares([e.label for e in splits.train], label_list)
    rare = rare_labels_from_shares(shares, rare_threshold)

    def report(part):
        return evaluate_examples(
            result.model,
            result.tokenizer,
            part,
            label_list,
            rare_labels=rare,
            max_length=result.config.max_length,
            n_boot=n_boot,
            temperature=fit.temperature,
            calibrator=serving.calibrator if serving is not None else None,
        )

    val_report = report(splits.val)
    scored, split_name = (report(splits.test), "test") if splits.test else (val_report, "val")
    metrics = {
        **scored,
        "split": split_name,
        "validation": {k: val_report[k] for k in HEADLINE_METRIC_KEYS},
        "calibration": {
            **fit.as_dict(),
            "fitted_on": fitted_on,
            **({"val_only_fit": val_fit.as_dict()} if calibration == "cv" else {}),
        },
        **({"serving_calibration": _serving_summary(serving, ood_pools)} if serving is not None else {}),
        "train_seconds": result.train_seconds,
        "examples_per_second": result.examples_per_second,
        "wall_seconds": time.perf_counter() - started,
        "training": result.summary(),
        "split_sizes": splits.sizes(),
        "val_source": splits.val_source,
        "tokenizer_coverage": tokenizer_coverage(
            result.tokenizer, [*splits.train, *splits.val, *splits.test], max_length=result.config.max_length
        ),
    }
    card_metric_keys = (*HEADLINE_METRIC_KEYS, "brier", "brier_uncalibrated")
    card = {
        "format": "manga-intent/2",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": list(label_list),
        "base_model": base_model or "packaged:all-MiniLM-L6-v2",
        "base_model_resolved": resolve_base_model(base_model)
        if model_and_tokenizer is None
        else "<in-memory>",
        "recipe": asdict(result.config),
        "temperature": fit.temperature,
        "data_hash": data_hash([*splits.train, *splits.val, *splits.test]),
        "split_sizes": splits.sizes(),
        "val_source": splits.val_source,
        "train_label_shares": shares,
        "rare_intents": rare,
        "rare_share_threshold": rare_threshold,
        "metrics_split": split_name,
        "metrics": {k: scored[k] for k in card_metric_keys},
        "training": {
            k: metrics["training"][k]
            for k in (
                "best_epoch",
                "best_step",
                "steps",
                "stopped_early",
                "overfit_gap",
                "overfit_guard_triggered",
                "notes",
            )
        },
        "versions": _versions(),
        **({"distributed": {**parallel.describe(), "written_by_rank": parallel.rank}} if parallel else {}),
        **(extra_card or {}),
    }
    if out_dir is not None:
        save_model(result.model, result.tokenizer, out_dir, card)
        write_calibration(out_dir, metrics["calibration"])
        if serving is not None:
            serving.save(out_dir)
    return result, metrics, card


def _serving_summary(serving, pools) -> dict:
    from manga_intent.calibrator_fit import public

    return {
        "calibrator": serving.calibrator.as_dict(),
        "calibrator_choice": serving.calibrator_choice["table"],
        "ood_detector": serving.detector.kind,
        "ood_threshold": serving.detector.threshold,
        "detector_choice": serving.detector_selection["table"],
        "routing": serving.policy.as_dict(),
        "validation": public(serving.validation),
        "ood_pools": pools.sources,
        "fitted_on": "val split + validation OOD pool (train split for the feature statistics)",
    }


def _versions() -> dict:
    import torch
    import transformers

    return {
        "manga_intent": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
