"""Train-and-evaluate on a labelled file: what the CLI and the Dagster assets both call."""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from manga_intent import __version__
from manga_intent.data import DataSplits, Example, data_hash, label_shares
from manga_intent.inference import predict_logits, softmax
from manga_intent.metrics import classification_report, rare_labels_from_shares
from manga_intent.model_io import resolve_base_model, save_model
from manga_intent.taxonomy import RARE_SHARE_THRESHOLD
from manga_intent.training import TrainConfig, TrainResult, train_classifier


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
) -> dict:
    """Full metric report of `model` on `examples` (labels must be in `label_list`)."""
    index = {label: i for i, label in enumerate(label_list)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise ValueError(f"evaluation labels {unknown} are not in the model's label set {list(label_list)}")
    logits = predict_logits(model, tokenizer, [e.text for e in examples], max_length=max_length)
    probs = softmax(logits, temperature)
    return classification_report(
        [index[e.label] for e in examples],
        probs,
        list(label_list),
        rare_labels=rare_labels,
        n_boot=n_boot,
        seed=seed,
    )


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
) -> tuple[TrainResult, dict, dict]:
    """Train, score the test split and (optionally) save. Returns (result, metrics, card)."""
    started = time.perf_counter()
    result = train_classifier(
        splits.train,
        splits.val,
        label_list,
        config,
        base_model=base_model,
        model_and_tokenizer=model_and_tokenizer,
        progress=progress,
    )
    shares = label_shares([e.label for e in splits.train], label_list)
    rare = rare_labels_from_shares(shares, rare_threshold)
    test_report = evaluate_examples(
        result.model,
        result.tokenizer,
        splits.test,
        label_list,
        rare_labels=rare,
        max_length=result.config.max_length,
        n_boot=n_boot,
    )
    metrics = {
        **test_report,
        "split": "test",
        "train_seconds": result.train_seconds,
        "examples_per_second": result.examples_per_second,
        "wall_seconds": time.perf_counter() - started,
        "training": result.summary(),
        "split_sizes": splits.sizes(),
    }
    card = {
        "format": "manga-intent/1",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": list(label_list),
        "base_model": base_model or "packaged:all-MiniLM-L6-v2",
        "base_model_resolved": resolve_base_model(base_model)
        if model_and_tokenizer is None
        else "<in-memory>",
        "recipe": asdict(result.config),
        "data_hash": data_hash([*splits.train, *splits.val, *splits.test]),
        "split_sizes": splits.sizes(),
        "train_label_shares": shares,
        "rare_intents": rare,
        "rare_share_threshold": rare_threshold,
        "metrics": {
            k: test_report[k]
            for k in ("n", "accuracy", "macro_f1", "rare_class_accuracy", "ece", "nll", "brier")
        },
        "training": {
            k: metrics["training"][k]
            for k in ("best_epoch", "stopped_early", "overfit_gap", "overfit_guard_triggered", "notes")
        },
        "versions": _versions(),
        **(extra_card or {}),
    }
    if out_dir is not None:
        save_model(result.model, result.tokenizer, out_dir, card)
    return result, metrics, card


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
