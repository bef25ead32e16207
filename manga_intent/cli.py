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
from manga_intent.glossary import GLOSSARY_SETTINGS

EXIT_USAGE = 2


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a classifier on a labelled JSONL file (recipe v2 by default)")
    p.add_argument("--data", required=True, help="JSONL with text, label and optional split per line")
    p.add_argument("--out", required=True, help="output directory for the model and metrics.json")
    p.add_argument(
        "--base-model",
        default=None,
        help="local HF directory or cached hub id (default: packaged all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--recipe",
        choices=["v2", "legacy"],
        default="v2",
        help="v2 (default) or the legacy seed-derived recipe; the options below override either",
    )
    # every option defaults to None = the chosen recipe's value (manga_intent.training.TrainConfig)
    p.add_argument("--epochs", type=int, default=None, help="upper bound on passes over the training rows")
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="optimiser-step budget, exactly (0 = epochs only); by default 250 steps or --min-epochs passes, "
        "whichever is more",
    )
    p.add_argument(
        "--min-epochs",
        type=float,
        default=None,
        help="passes over the training rows the default step budget covers at least (3)",
    )
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default: per base model)")
    p.add_argument("--head-lr-multiplier", type=float, default=None, help="head learning rate / base rate")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--loss", choices=["ce", "focal"], default=None)
    p.add_argument("--gamma", type=float, default=None, help="focal-loss focusing parameter")
    p.add_argument(
        "--class-weighting",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="inverse-frequency class weights in the loss",
    )
    p.add_argument(
        "--oversample",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="replicate minority-class rows",
    )
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--rdrop-alpha", type=float, default=None, help="R-Drop consistency weight (0 = off)")
    p.add_argument("--ema-decay", type=float, default=None, help="EMA of the weights (0 = off)")
    p.add_argument(
        "--lr-decay", type=float, default=None, help="discriminative learning-rate decay per layer"
    )
    p.add_argument("--warmup-ratio", type=float, default=None)
    p.add_argument(
        "--pooling",
        choices=["auto", "mean", "cls", "max", "mean_sqrt_len", "attention"],
        default=None,
        help="auto = the base model's sentence-transformers pooling, else cls; attention = learned token weights",
    )
    p.add_argument("--freeze-word-embeddings", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--head-dropout", type=float, default=None, help="dropout before the classifier head")
    p.add_argument(
        "--frozen-layers",
        type=int,
        default=None,
        help="bottom transformer blocks frozen with the embeddings (their outputs cached once per row)",
    )
    p.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default=None,
        help="bf16 autocast; auto = only on CPUs with AMX/AVX-512-BF16",
    )
    p.add_argument(
        "--fast-dropout",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dropout masks from manga_intent.fast_dropout while training (default on; off = torch's)",
    )
    p.add_argument(
        "--ja-en-glossary",
        choices=list(GLOSSARY_SETTINGS),
        default=None,
        help="English glosses after Japanese shop terms, saved in the tokenizer (manga_intent/glossary.py); "
        "auto = only when the base vocabulary cannot spell them",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="training seed (init and sampler); default init 123, sampler 2024 as in the seed recipe",
    )
    p.add_argument(
        "--split-seed",
        type=int,
        default=42,
        help="seed of the stratified 80/10/10 split, or of the validation set carved from train",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of train carved into validation when the file has train/test but no val rows",
    )
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in evaluations")
    p.add_argument(
        "--overfit-gap", type=float, default=None, help="val-train loss gap that flags overfitting"
    )
    p.add_argument(
        "--enforce-overfit-guard",
        action="store_true",
        default=None,
        help="stop training when the gap is exceeded",
    )
    p.add_argument(
        "--temperature-start",
        type=float,
        default=None,
        help="anneal the training softmax temperature from this value to 1 (seed: 1.5)",
    )
    p.add_argument(
        "--labels", default=None, help="comma-separated label set to enforce (default: from the data)"
    )
    p.add_argument("--quarantine", action="store_true", help="set invalid rows aside instead of failing")
    p.add_argument(
        "--train-only",
        action="append",
        default=[],
        metavar="FILE",
        help="labelled rows added to the training split only, after the split (repeatable): never validated "
        "or tested on, and an error if they repeat a message of --data. The asset graph trains its champion "
        "with data/targeted/targeted.jsonl added this way",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    p.add_argument(
        "--calibration",
        choices=["val", "cv"],
        default="val",
        help="fit the temperature on the validation split (default), or on out-of-fold logits of the whole "
        "train+val pool (k extra trainings; far more rows for the fit)",
    )
    p.add_argument("--calibration-folds", type=int, default=5, help="folds of --calibration cv")
    _add_ood_training_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


def _add_ood_training_options(p) -> None:
    g = p.add_argument_group("out-of-scope detection, calibration and robustness")
    g.add_argument(
        "--ood-data",
        default="shipped",
        help="JSONL of out-of-scope texts (one {'text': ...} per line) for outlier exposure and for choosing "
        "the OOD detector, with generated off-topic text added; 'shipped' (default) = the fitting half of "
        "data/ood; 'none' = no detector (temperature only)",
    )
    g.add_argument(
        "--outlier-exposure-weight",
        type=float,
        default=None,
        help="weight of the uniform-target loss on out-of-scope batches (default 0.5 whenever --ood-data "
        "gives texts; 0 = off)",
    )
    g.add_argument(
        "--adversarial-augmentation",
        type=float,
        default=None,
        help="add attacked copies of this share of the training rows (training attack phrasings only)",
    )
    g.add_argument(
        "--adversarial-weight",
        type=float,
        default=None,
        help="adversarial training: weight of the loss on a batch of attacked training rows each step "
        "(composed injected instructions and character attacks, training phrasings only; 0 = off)",
    )
    g.add_argument(
        "--adversarial-consistency",
        type=float,
        default=None,
        help="with --adversarial-weight: weight of KL(clean || attacked) on the same rows (TRADES; 0 = off)",
    )
    g.add_argument(
        "--auxiliary-backprop-share",
        type=float,
        default=None,
        help="selective backprop: each step scores its out-of-scope and attacked rows without gradients and "
        "trains only this share of each kind, the highest-loss ones (default 1 = every row)",
    )
    g.add_argument(
        "--max-in-domain-flag-rate",
        type=float,
        default=None,
        help="OOD threshold: at most this share of in-domain validation messages go to the fallback (0.05)",
    )
    g.add_argument(
        "--target-risk",
        type=float,
        default=None,
        help="clarify threshold: routed messages may be wrong at most this often on validation (0.03)",
    )
    g.add_argument(
        "--ood-prior", type=float, default=None, help="share of out-of-scope traffic to calibrate for (0.05)"
    )


_TRAIN_OPTIONS = (
    "epochs",
    "max_steps",
    "min_epochs",
    "lr",
    "head_lr_multiplier",
    "batch_size",
    "loss",
    "gamma",
    "class_weighting",
    "oversample",
    "label_smoothing",
    "rdrop_alpha",
    "ema_decay",
    "lr_decay",
    "warmup_ratio",
    "pooling",
    "freeze_word_embeddings",
    "frozen_layers",
    "head_dropout",
    "bf16",
    "fast_dropout",
    "ja_en_glossary",
    "max_length",
    "patience",
    "overfit_gap",
    "enforce_overfit_guard",
    "temperature_start",
    "outlier_exposure_weight",
    "adversarial_augmentation",
    "adversarial_weight",
    "adversarial_consistency",
    "auxiliary_backprop_share",
)


def train_config_from_args(args):
    """The chosen recipe with only the options the user gave overriding it."""
    from dataclasses import replace

    from manga_intent.training import LEGACY_RECIPE, TrainConfig, with_step_budget

    base = LEGACY_RECIPE if args.recipe == "legacy" else TrainConfig()
    budget = ("max_steps", "min_epochs")  # applied last, by the one rule for a budget given
    overrides = {
        name: getattr(args, name)
        for name in _TRAIN_OPTIONS
        if name not in budget and getattr(args, name) is not None
    }
    if args.seed is not None:
        overrides.update(init_seed=args.seed, sampler_seed=args.seed)
    config = with_step_budget(
        replace(base, split_seed=args.split_seed, **overrides), args.max_steps, args.min_epochs
    )
    config.validate()
    return config


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="print metrics of a trained model on a labelled JSONL file")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="rows to score: that split's rows (val carved as in training when the file has none), "
        "or all rows",
    )
    p.add_argument("--uncalibrated", action="store_true", help="score raw probabilities (temperature 1)")
    p.add_argument(
        "--ood",
        default=None,
        help="JSONL of out-of-scope texts (any label ignored): adds the `ood` block and the risk-coverage "
        "summary of the route/clarify/fallback policy",
    )
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument(
        "--quarantine", action="store_true", help="set invalid rows aside (counted) instead of failing"
    )
    p.add_argument("--quiet", action="store_true")


def _add_robustness(sub) -> None:
    p = sub.add_parser("robustness", help="flip and goal rates of attacks on labelled messages")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="labelled JSONL; its --split rows are attacked")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument(
        "--phrasings",
        default="heldout",
        choices=["heldout", "val", "train"],
        help="attack phrasings: heldout (never used to train or choose anything; default), val (the set "
        "defences are chosen on) or train",
    )
    p.add_argument("--attacks", default="all", help="comma-separated attack names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quarantine", action="store_true", help="set invalid rows aside (counted) instead of failing"
    )
    p.add_argument("--quiet", action="store_true")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify texts; one JSON line per text")
    p.add_argument("--model", required=True)
    p.add_argument("texts", nargs="+")
    p.add_argument("--quiet", action="store_true")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="comparative methods table: every method x seed on the same split")
    p.add_argument("--data", required=True, help="labelled JSONL (test rows are where methods are scored)")
    p.add_argument(
        "--methods",
        default="all",
        help="comma-separated subset of: "
        + ", ".join(
            [
                "plain_ce",
                "class_weighted_ce",
                "oversampling",
                "label_smoothing",
                "focal_class_weights",
                "threshold_moving",
                "two_stage",
                "recipe_v2",
            ]
        ),
    )
    p.add_argument("--seeds", type=int, default=10, help="training seeds 1..N (default 10)")
    p.add_argument("--only-seeds", default=None, help="comma-separated seeds to run now (chunked grids)")
    p.add_argument(
        "--results",
        default=None,
        help="JSONL the runs are appended to; runs already in it are skipped (default: OUT/runs.jsonl)",
    )
    p.add_argument(
        "--out", default="compare_out", help="directory for runs.jsonl, summary.json, table.md, cache"
    )
    p.add_argument(
        "--quarantine", action="store_true", help="set invalid rows aside (counted) instead of failing"
    )
    p.add_argument("--base-model", default=None)
    p.add_argument(
        "--max-steps", type=int, default=None, help="step budget for every method (default: recipe v2's)"
    )
    p.add_argument("--split-seed", type=int, default=42)
    p.add_argument(
        "--ood-data",
        default="shipped",
        help="out-of-scope texts recipe v2's outlier exposure trains on, as in `train`: 'shipped' (default), "
        "a JSONL of {'text': ...} lines, or 'none' (recipe v2 then trains without exposure)",
    )
    p.add_argument("--no-summary", action="store_true", help="only run; do not summarise")
    p.add_argument("--bootstrap", type=int, default=5000, help="paired-bootstrap resamples")
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
    _add_compare(sub)
    _add_robustness(sub)
    _add_plugins(sub)
    return parser


def _log(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def _load_labelled(args, path, allowed_labels=None, *, name: str | None = None):
    """`load_jsonl` with the command's --quarantine; quarantined rows are counted on stderr (as `name`, default
    the path), never dropped silently (commands that print JSON also report them there)."""
    from manga_intent.data import load_jsonl

    loaded = load_jsonl(path, allowed_labels=allowed_labels, quarantine=args.quarantine)
    if loaded.quarantined:
        _log(
            args,
            f"{name or path}: quarantined {len(loaded.quarantined)} row(s): {loaded.quarantine_counts} "
            f"(lines {[p.line for p in loaded.quarantined][:20]})",
        )
    return loaded


def _quarantine_report(loaded) -> dict:
    return {"quarantined_rows": len(loaded.quarantined), "quarantine_counts": loaded.quarantine_counts}


def _with_train_only_rows(args, splits, label_list):
    """`splits` with each --train-only file's rows added to training (as the asset graph adds targeted rows)."""
    from dataclasses import replace

    from manga_intent.labelled_pool import with_targeted_rows

    for path in args.train_only:
        extra = _load_labelled(args, path, label_list, name=f"--train-only {path}")
        if not extra.examples:
            raise ValueError(f"--train-only {path}: no usable rows")
        everything = [*splits.train, *splits.val, *splits.test]
        try:
            added = with_targeted_rows(everything, extra.examples)[len(everything) :]
        except ValueError as err:
            raise ValueError(f"--train-only {path}: {err}") from None
        splits = replace(splits, train=[*splits.train, *added])
        _log(args, f"--train-only {path}: {len(added)} rows added to training")
    return splits


def cmd_train(args) -> int:
    from manga_intent.data import infer_label_list, make_splits
    from manga_intent.distributed import DataParallel
    from manga_intent.train_and_evaluate import run_training

    allowed = [s.strip() for s in args.labels.split(",") if s.strip()] if args.labels else None
    loaded = _load_labelled(args, args.data, allowed)
    label_list = allowed or infer_label_list(loaded.examples)
    if len(label_list) < 2:
        raise ValueError(f"need at least 2 labels to train a classifier, found {label_list}")
    config = train_config_from_args(args)
    if args.calibration_folds < 2:
        raise ValueError(f"--calibration-folds must be >= 2 (got {args.calibration_folds})")
    splits = make_splits(loaded.examples, seed=args.split_seed, val_fraction=args.val_fraction)
    splits = _with_train_only_rows(args, splits, label_list)
    missing = sorted(set(label_list) - {e.label for e in splits.train})
    if missing:
        raise ValueError(f"labels with no training rows: {missing}")
    carved = (
        f"; validation carved from train ({len(splits.val)} rows, stratified, seed {args.split_seed})"
        if splits.val_source == "carved_from_train"
        else ""
    )
    _log(args, f"{len(loaded.examples)} rows, {len(label_list)} labels, split {splits.sizes()}{carved}")
    out = Path(args.out)
    pools, serving_options = _ood_pools_from_args(args, label_list)
    if pools is None and (args.outlier_exposure_weight or 0) > 0:
        raise ValueError("--outlier-exposure-weight needs out-of-scope texts: drop --ood-data none")
    if pools is None and config.outlier_exposure_weight > 0:
        _log(args, "outlier exposure off: --ood-data none gives no out-of-scope texts")
    if pools is not None and args.calibration == "cv":
        raise ValueError(
            "--calibration cv fits one temperature on out-of-fold logits; the serving calibration (calibrator "
            "family, OOD detector, routing) is fitted on val: add --ood-data none to use --calibration cv"
        )
    if pools is not None:
        _log(args, f"out-of-scope pools: {pools.sources}")
    parallel = DataParallel.from_env()  # under torchrun: one rank of a DistributedDataParallel run
    try:
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
                "train_only_files": [str(Path(f).resolve()) for f in args.train_only],
            },
            calibration=args.calibration,
            calibration_folds=args.calibration_folds,
            ood_pools=pools,
            serving_options=serving_options,
            parallel=parallel,
        )
    finally:
        if parallel is not None:
            parallel.close()
    if parallel is not None and not parallel.is_main:
        return 0  # rank 0 writes the model, metrics.json and the summary
    if parallel is not None:
        metrics["distributed"] = parallel.describe()
    metrics["quarantined_rows"] = len(loaded.quarantined)
    metrics["quarantine_counts"] = loaded.quarantine_counts
    (out / "metrics.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _log(
        args,
        f"{metrics['split']} accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"ECE {metrics['ece_uncalibrated']:.4f} -> {metrics['ece']:.4f} calibrated "
        f"(T={metrics['calibration']['temperature']:.3f}, fitted on {metrics['calibration']['fitted_on']})  "
        f"{metrics['examples_per_second']:.1f} train examples/s  → {out}",
    )
    print(
        json.dumps(
            {
                "split": metrics["split"],
                "val_source": metrics["val_source"],
                **{
                    k: metrics[k]
                    for k in (
                        "accuracy",
                        "macro_f1",
                        "rare_class_accuracy",
                        "ece",
                        "ece_uncalibrated",
                        "nll",
                        "nll_uncalibrated",
                        "train_seconds",
                        "examples_per_second",
                    )
                },
                "temperature": metrics["calibration"]["temperature"],
                **(
                    {
                        "calibrator": metrics["serving_calibration"]["calibrator"]["family"],
                        "ood_detector": metrics["serving_calibration"]["ood_detector"],
                        "ood_threshold": metrics["serving_calibration"]["ood_threshold"],
                        "clarify_below": metrics["serving_calibration"]["routing"]["clarify_below"],
                    }
                    if "serving_calibration" in metrics
                    else {}
                ),
            }
        )
    )
    return 0


def shipped_pool_note(ood_data: str, label_list) -> str | None:
    """A warning when the shop's own out-of-scope pool meets a label set that is not the shop's: its
    off-topic rows (weather, recipes, travel) may be in scope there, and the detector is fitted to them."""
    from manga_intent.taxonomy import INTENTS

    foreign = sorted(set(label_list) - set(INTENTS))
    if ood_data != "shipped" or not foreign:
        return None
    return (
        f"note: --ood-data shipped is MangaAssist's out-of-scope text, and {len(foreign)} of these "
        f"{len(label_list)} labels are not MangaAssist intents (e.g. {foreign[0]!r}); for another domain pass "
        "--ood-data FILE (its own out-of-scope messages) or --ood-data none"
    )


def _ood_pools_from_args(args, label_list):
    """(OODPools or None, options for fit_serving_calibration) from the train options; notes on stderr when
    the shipped pool meets another domain's labels."""
    from manga_intent.calibrator_fit import build_ood_pools, load_ood_rows
    from manga_intent.shipped_data import ood_fitting_pool

    note = shipped_pool_note(args.ood_data, label_list)
    if note:
        _log(args, note)
    options = {
        name: getattr(args, name)
        for name in ("max_in_domain_flag_rate", "target_risk", "ood_prior")
        if getattr(args, name, None) is not None
    }
    if args.ood_data == "none":
        return None, options
    rows = ood_fitting_pool() if args.ood_data == "shipped" else load_ood_rows(args.ood_data)
    return build_ood_pools(rows), options


def cmd_evaluate(args) -> int:
    from manga_intent.data import examples_for_split
    from manga_intent.model_io import load_trained, read_temperature
    from manga_intent.train_and_evaluate import evaluate_examples

    model, tokenizer, card = load_trained(args.model)
    labels = card["labels"]
    loaded = _load_labelled(args, args.data, labels)
    examples = examples_for_split(
        loaded.examples, args.split, seed=card.get("recipe", {}).get("split_seed", 42)
    )
    from manga_intent.calibrator_fit import ServingCalibration

    temperature = 1.0 if args.uncalibrated else read_temperature(args.model)
    serving = ServingCalibration.load(args.model) if ServingCalibration.exists(args.model) else None
    max_length = card.get("recipe", {}).get("max_length", 128)
    report = evaluate_examples(
        model,
        tokenizer,
        examples,
        labels,
        rare_labels=card.get("rare_intents", []),
        max_length=max_length,
        n_boot=args.bootstrap,
        temperature=temperature,
        calibrator=serving.calibrator if serving is not None and not args.uncalibrated else None,
    )
    report["split"] = args.split
    report.update(_quarantine_report(loaded))
    if args.ood is not None:
        report.update(_ood_evaluation(model, tokenizer, serving, examples, labels, args, max_length))
    print(json.dumps(report, ensure_ascii=False))
    return 0


def _ood_evaluation(model, tokenizer, serving, examples, labels, args, max_length) -> dict:
    """The `ood` block and the risk-coverage summary for `evaluate --ood`."""
    import numpy as np

    from manga_intent.calibrator_fit import eager_outputs, load_ood_rows, public, score_outputs

    if serving is None:
        raise ValueError(
            f"{args.model} has no OOD detector (trained with --ood-data none, or before it existed); "
            "retrain with `manga-intent train` to get one"
        )
    rows = load_ood_rows(args.ood)
    index = {label: i for i, label in enumerate(labels)}
    scored = score_outputs(
        serving,
        eager_outputs(model, tokenizer, [e.text for e in examples], max_length=max_length),
        np.array([index[e.label] for e in examples]),
        labels,
        ood=eager_outputs(model, tokenizer, [r["text"] for r in rows], max_length=max_length),
        ood_categories=[r["category"] for r in rows],
        curve=True,
    )
    scored = public(scored)
    risk = scored["risk_coverage"]
    _log(
        args,
        f"OOD ({scored['ood']['detector']}): AUROC {scored['ood']['auroc']:.3f}  TPR {scored['ood']['tpr_at_threshold']:.3f} "
        f"at {scored['ood']['in_domain_flag_rate']:.3f} in-domain flags; routing: coverage {risk['coverage']:.3f}, "
        f"selective risk {risk['selective_risk']:.3f}, AURC {risk['aurc_joint']:.4f}",
    )
    return {
        "ood": scored["ood"],
        "risk_coverage": risk,
        "classwise_ece": scored["classwise_ece"],
        "calibrator": scored["calibrator"],
    }


def cmd_predict(args) -> int:
    from manga_intent.calibrator_fit import ServingCalibration, eager_outputs
    from manga_intent.inference import softmax, top_k
    from manga_intent.model_io import load_trained, read_temperature

    model, tokenizer, card = load_trained(args.model)
    labels = card["labels"]
    temperature = read_temperature(args.model)
    empty = [i for i, t in enumerate(args.texts) if not t.strip()]
    if empty:
        raise ValueError(f"text argument(s) {empty} are empty")
    serving = ServingCalibration.load(args.model) if ServingCalibration.exists(args.model) else None
    outputs = eager_outputs(model, tokenizer, args.texts, max_length=card["recipe"]["max_length"])
    if serving is None:
        probs = softmax(outputs.logits, temperature)
    else:
        probs = serving.probabilities(outputs.logits)
        scores = serving.ood_scores(outputs)
        routes = serving.policy.decide(probs.max(1), scores)
    for i, (text, row) in enumerate(zip(args.texts, probs)):
        ranked = top_k(row, labels, 3)
        line = {
            "text": text,
            "intent": ranked[0]["intent"],
            "confidence": ranked[0]["confidence"],
            "top3": ranked,
        }
        if serving is not None:
            line.update(
                is_ood=bool(scores[i] > serving.detector.threshold),
                ood_score=round(float(scores[i]), 6),
                ood_detector=serving.detector.kind,
                route=str(routes[i]),
            )
        print(json.dumps(line, ensure_ascii=False))
    return 0


def cmd_robustness(args) -> int:
    from manga_intent.calibrator_fit import ServingCalibration, eager_outputs
    from manga_intent.data import examples_for_split
    from manga_intent.model_io import load_trained
    from manga_intent.robustness import ATTACKS, ATTACKS_BY_NAME, run_robustness

    model, tokenizer, card = load_trained(args.model)
    labels = card["labels"]
    loaded = _load_labelled(args, args.data, labels)
    examples = examples_for_split(
        loaded.examples, args.split, seed=card.get("recipe", {}).get("split_seed", 42)
    )
    names = (
        [a.name for a in ATTACKS] if args.attacks == "all" else [a.strip() for a in args.attacks.split(",")]
    )
    unknown = sorted(set(names) - set(ATTACKS_BY_NAME))
    if unknown:
        raise ValueError(f"unknown attacks {unknown}; choose from {sorted(ATTACKS_BY_NAME)}")
    serving = ServingCalibration.load(args.model) if ServingCalibration.exists(args.model) else None
    max_length = card.get("recipe", {}).get("max_length", 128)

    def predict(texts):
        logits = eager_outputs(model, tokenizer, texts, max_length=max_length).logits
        return serving.probabilities(logits).argmax(1) if serving is not None else logits.argmax(1)

    def flag(texts):
        return serving.detector.flags(
            *_logits_features(eager_outputs(model, tokenizer, texts, max_length=max_length))
        )

    report = run_robustness(
        predict,
        examples,
        labels,
        attacks=[ATTACKS_BY_NAME[n] for n in names],
        phrasings=args.phrasings,
        seed=args.seed,
        flag_ood=flag if serving is not None else None,
    )
    for row in report.rows:
        goal = "" if row["goal_rate"] is None else f"  goal {row['goal_rate']:.3f}"
        _log(args, f"{row['attack']:<22} flip {row['flip_rate']:.3f}{goal}  accuracy {row['accuracy']:.3f}")
    print(json.dumps({**report.as_dict(), **_quarantine_report(loaded)}, ensure_ascii=False))
    return 0


def _logits_features(outputs):
    return outputs.logits, outputs.features


def cmd_compare(args) -> int:
    from manga_intent import compare
    from manga_intent.data import data_hash, infer_label_list, make_splits
    from manga_intent.training import TrainConfig, with_step_budget

    methods = list(compare.METHODS) if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    unknown = sorted(set(methods) - set(compare.METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(compare.METHODS)}")
    if args.seeds < 1:
        raise ValueError("--seeds must be >= 1")
    seeds = (
        [int(s) for s in args.only_seeds.split(",")] if args.only_seeds else list(range(1, args.seeds + 1))
    )
    loaded = _load_labelled(args, args.data)
    label_list = infer_label_list(loaded.examples)
    splits = make_splits(loaded.examples, seed=args.split_seed)
    version = data_hash(loaded.examples)
    out = Path(args.out)
    results = Path(args.results) if args.results else out / "runs.jsonl"
    base = with_step_budget(TrainConfig(), args.max_steps, None)
    cache = compare.OutputCache(out / "cache")
    pools, _ = _ood_pools_from_args(args, label_list)
    outliers = pools.train_texts if pools is not None else []
    setup = compare.setup_key(base, args.base_model, outliers)
    stored = compare.read_records(results)
    matching = [r for r in stored if r.get("data_hash") == version and r.get("setup") == setup]
    done = {(r["method"], int(r["seed"])) for r in matching}
    _log(
        args,
        f"{len(loaded.examples)} rows, {len(label_list)} labels, split {splits.sizes()}; "
        f"{len(methods)} methods x seeds {seeds}; setup {setup}; "
        f"{len(outliers)} out-of-scope texts for recipe v2's outlier exposure; results -> {results}"
        + (
            f" ({len(stored) - len(matching)} stored runs of other data or another setup are ignored)"
            if len(stored) > len(matching)
            else ""
        ),
    )
    for seed in seeds:
        for method in methods:
            if (method, seed) in done:
                continue
            started = __import__("time").perf_counter()
            record = compare.run_method(
                method,
                seed,
                splits,
                label_list,
                base_model=args.base_model,
                base_config=base,
                cache=cache,
                data_version=version,
                outlier_texts=outliers,
            )
            record["data_hash"] = version
            compare.append_record(results, record)
            _log(
                args,
                f"{method} seed {seed}: test acc {record['accuracy']:.4f} macro-F1 {record['macro_f1']:.4f} "
                f"ECE {record['ece_calibrated']:.4f} ({__import__('time').perf_counter() - started:.0f}s)",
            )
    if args.no_summary:
        return 0
    records = [
        r
        for r in compare.read_records(results)
        if r.get("data_hash") == version and r.get("setup") == setup and r["method"] in methods
    ]
    if not records:
        raise ValueError(f"no runs of setup {setup} on data {version} in {results} to table")
    summary = compare.summarize(
        records, compare.labels_of_test_split(splits, label_list), n_boot=args.bootstrap
    )
    summary.update(
        data=str(Path(args.data).resolve()),
        data_hash=version,
        split_sizes=splits.sizes(),
        step_budget=base.max_steps,
        min_epochs=base.min_epochs,
        setup=setup,
    )
    ensemble = compare.seed_ensemble(
        cache,
        splits,
        label_list,
        sorted({int(r["seed"]) for r in records}),
        data_version=version,
        base_config=base,
        base_model=args.base_model,
        outlier_texts=outliers,
    )
    if ensemble is not None:
        summary["seed_ensemble"] = ensemble
    table = compare.markdown_table(summary)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    print(json.dumps(summary))
    print(table, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from manga_intent.model_io import ModelLoadError, silence_progress_bars

    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.quiet:
        logging.disable(logging.WARNING)
        silence_progress_bars()
    handlers = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "predict": cmd_predict,
        "compare": cmd_compare,
        "robustness": cmd_robustness,
    }
    try:
        return handlers[args.command](args) if args.command in handlers else args.handler(args)
    except (DataValidationError, ModelLoadError, FileNotFoundError, ValueError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
