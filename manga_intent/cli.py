"""`manga-intent`: train, evaluate and query intent classifiers from the shell.

Expected failures (bad data, a missing model, bad options) print one clear `error:` line and
exit with status 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from manga_intent.data import DataValidationError

EXIT_USAGE = 2


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a classifier on a labelled JSONL file")
    p.add_argument("--data", required=True, help="JSONL with text, label and optional split per line")
    p.add_argument("--out", required=True, help="output directory for the model and metrics.json")
    p.add_argument(
        "--base-model",
        default=None,
        help="local HF directory or cached hub id (default: packaged all-MiniLM-L6-v2)",
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default: per base model)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--gamma", type=float, default=2.0, help="focal-loss focusing parameter")
    p.add_argument(
        "--lr-decay", type=float, default=0.82, help="discriminative learning-rate decay per layer"
    )
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="training seed (init and sampler); default init 123, sampler 2024 as in the seed recipe",
    )
    p.add_argument("--split-seed", type=int, default=42, help="seed of the stratified 80/10/10 split")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--patience", type=int, default=2, help="early-stopping patience in epochs")
    p.add_argument(
        "--overfit-gap", type=float, default=0.15, help="val-train loss gap that flags overfitting"
    )
    p.add_argument(
        "--enforce-overfit-guard", action="store_true", help="stop training when the gap is exceeded"
    )
    p.add_argument(
        "--temperature-start",
        type=float,
        default=1.0,
        help="anneal the training softmax temperature from this value to 1 (seed: 1.5)",
    )
    p.add_argument(
        "--labels", default=None, help="comma-separated label set to enforce (default: from the data)"
    )
    p.add_argument("--quarantine", action="store_true", help="set invalid rows aside instead of failing")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="print metrics of a trained model on a labelled JSONL file")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--quiet", action="store_true")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify texts; one JSON line per text")
    p.add_argument("--model", required=True)
    p.add_argument("texts", nargs="+")
    p.add_argument("--quiet", action="store_true")


#: Subcommands of other layers (the service's `serve`) register here, so the core never imports them.
PLUGIN_GROUP = "manga_intent.cli"


def _add_plugins(sub) -> None:
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        entry.load()(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manga-intent", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_plugins(sub)
    return parser


def _log(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    from manga_intent.data import infer_label_list, load_jsonl, make_splits
    from manga_intent.train_and_evaluate import run_training
    from manga_intent.training import TrainConfig

    allowed = [s.strip() for s in args.labels.split(",") if s.strip()] if args.labels else None
    loaded = load_jsonl(args.data, allowed_labels=allowed, quarantine=args.quarantine)
    if loaded.quarantined:
        _log(
            args,
            f"quarantined {len(loaded.quarantined)} row(s): {loaded.quarantine_counts} "
            f"(lines {[p.line for p in loaded.quarantined][:20]})",
        )
    label_list = allowed or infer_label_list(loaded.examples)
    if len(label_list) < 2:
        raise ValueError(f"need at least 2 labels to train a classifier, found {label_list}")
    splits = make_splits(loaded.examples, seed=args.split_seed)
    seeds = {} if args.seed is None else {"init_seed": args.seed, "sampler_seed": args.seed}
    config = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        gamma=args.gamma,
        lr_decay=args.lr_decay,
        warmup_ratio=args.warmup_ratio,
        max_length=args.max_length,
        patience=args.patience,
        overfit_gap=args.overfit_gap,
        enforce_overfit_guard=args.enforce_overfit_guard,
        temperature_start=args.temperature_start,
        split_seed=args.split_seed,
        **seeds,
    )
    config.validate()
    _log(args, f"{len(loaded.examples)} rows, {len(label_list)} labels, split {splits.sizes()}")
    out = Path(args.out)
    result, metrics, _ = run_training(
        splits,
        label_list,
        config,
        base_model=args.base_model,
        out_dir=out,
        n_boot=args.bootstrap,
        progress=not args.quiet,
        extra_card={
            "source_file": str(Path(args.data).resolve()),
            "quarantined_rows": len(loaded.quarantined),
        },
    )
    metrics["quarantined_rows"] = len(loaded.quarantined)
    metrics["quarantine_counts"] = loaded.quarantine_counts
    (out / "metrics.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _log(
        args,
        f"test accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"ECE {metrics['ece']:.4f}  {metrics['examples_per_second']:.1f} train examples/s  → {out}",
    )
    print(
        json.dumps(
            {
                k: metrics[k]
                for k in (
                    "accuracy",
                    "macro_f1",
                    "rare_class_accuracy",
                    "ece",
                    "nll",
                    "train_seconds",
                    "examples_per_second",
                )
            }
        )
    )
    return 0


def cmd_evaluate(args) -> int:
    from manga_intent.data import load_jsonl, make_splits
    from manga_intent.model_io import load_trained
    from manga_intent.train_and_evaluate import evaluate_examples

    model, tokenizer, card = load_trained(args.model)
    labels = card["labels"]
    loaded = load_jsonl(args.data, allowed_labels=labels)
    if args.split == "all":
        examples = loaded.examples
    else:
        splits = make_splits(loaded.examples, seed=card.get("recipe", {}).get("split_seed", 42))
        examples = getattr(splits, args.split)
    report = evaluate_examples(
        model,
        tokenizer,
        examples,
        labels,
        rare_labels=card.get("rare_intents", []),
        max_length=card.get("recipe", {}).get("max_length", 128),
        n_boot=args.bootstrap,
    )
    report["split"] = args.split
    print(json.dumps(report, ensure_ascii=False))
    return 0


def cmd_predict(args) -> int:
    from manga_intent.inference import predict_logits, softmax, top_k
    from manga_intent.model_io import load_trained

    model, tokenizer, card = load_trained(args.model)
    labels = card["labels"]
    empty = [i for i, t in enumerate(args.texts) if not t.strip()]
    if empty:
        raise ValueError(f"text argument(s) {empty} are empty")
    probs = softmax(predict_logits(model, tokenizer, args.texts, max_length=card["recipe"]["max_length"]))
    for text, row in zip(args.texts, probs):
        ranked = top_k(row, labels, 3)
        print(
            json.dumps(
                {
                    "text": text,
                    "intent": ranked[0]["intent"],
                    "confidence": ranked[0]["confidence"],
                    "top3": ranked,
                },
                ensure_ascii=False,
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    from manga_intent.model_io import ModelLoadError, silence_progress_bars

    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.quiet:
        logging.disable(logging.WARNING)
        silence_progress_bars()
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}
    try:
        return handlers[args.command](args) if args.command in handlers else args.handler(args)
    except (DataValidationError, ModelLoadError, FileNotFoundError, ValueError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
