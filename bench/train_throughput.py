"""Training throughput and accuracy, side by side in one run: the legacy recipe vs recipe v2 (and each
speed change on its own) vs a plain transformers fine-tuning loop at a rate tuned on validation.

All variants run in this one process, on the same label set, split and base model, so the ratios are
comparable even on a noisy shared machine (absolute numbers are not).

  python bench/train_throughput.py [--label-set seed|seed5|seed3|gen80 | --data FILE] [--throughput-examples 640]
                                   [--plain-lrs 1e-4,3e-4,5e-4] [--skip-accuracy]

1. Throughput: each variant makes one timed pass over the same `--throughput-examples` training rows
   (batch 32): legacy (CLS through the pooler, full AdamW over the word embeddings with torch's default
   per-parameter loop, one mega-batch of 50 batches), then each speed change on its own (frozen word
   embeddings, mega-batch 8, fused / foreach AdamW), recipe v2 without each of its speed changes, recipe
   v2; the seed's pad-to-128 batches and the plain transformers loop for reference.
2. Accuracy: legacy and recipe v2 train fully; the plain loop trains at each `--plain-lrs` rate and
   keeps the one with the best validation accuracy. Choices are made on validation; test accuracy
   is reported for the chosen ones.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.label_sets import LABEL_SETS, file_label_set, label_set  # noqa: E402
from manga_intent.calibrator_fit import shipped_ood_pools  # noqa: E402
from manga_intent.cpu import resolve_bf16  # noqa: E402
from manga_intent.inference import predict_logits  # noqa: E402
from manga_intent.metrics import macro_f1  # noqa: E402
from manga_intent.model_io import load_base_for_training  # noqa: E402
from manga_intent.training import LEGACY_RECIPE, TrainConfig, configure_threads, train_classifier  # noqa: E402

#: recipe v2's optimisation alone: the speed changes without the auxiliary batches of its defences
BARE_V2 = replace(TrainConfig(), outlier_exposure_weight=0.0, adversarial_weight=0.0)
EVERY_ROW = replace(TrainConfig(), auxiliary_backprop_share=1.0)  # pinned: the variants below predate it


def plain_hf_loop(train, label_list, *, base_model, lr, epochs, batch_size, seed, max_examples=None):
    """The textbook transformers fine-tuning loop; timed over its epochs (tokenisation excluded, as for ours)."""
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    tokenizer, model = load_base_for_training(base_model, label_list, architecture="hf")
    index = {label: i for i, label in enumerate(label_list)}
    rows = train if max_examples is None else train[:max_examples]
    features = [
        {**tokenizer(e.text, truncation=True, max_length=128), "labels": index[e.label]} for e in rows
    ]
    loader = DataLoader(
        features,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=DataCollatorWithPadding(tokenizer),
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    total = len(loader) * epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
    model.train()
    seconds, seen = 0.0, 0
    for _ in range(epochs):
        start = time.perf_counter()  # batching and padding count, as they do for our trainer
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            seen += len(batch["labels"])
        seconds += time.perf_counter() - start
    model.eval()
    return model, tokenizer, seen / seconds


def timed_pass(
    train, val, label_list, config: TrainConfig, base_model: str | None, n: int, outlier_texts=()
) -> tuple[int, float]:
    """(examples, seconds) of our trainer's optimiser steps over exactly n training rows (batch 32).

    Examples are training rows: the outlier-exposure and adversarial rows a step adds are work done per
    training row, not rows of the data."""
    steps = max(1, n // config.batch_size)
    config = replace(config, epochs=1, max_steps=steps, eval_every=10**9, patience=1)
    result = train_classifier(
        train[: steps * config.batch_size],
        val[:32],
        label_list,
        config,
        base_model=base_model,
        progress=False,
        outlier_texts=outlier_texts if config.outlier_exposure_weight > 0 else (),
    )
    return result.examples_seen, result.train_seconds


def scores(model, tokenizer, examples, label_list) -> tuple[float, float]:
    logits = predict_logits(model, tokenizer, [e.text for e in examples])
    truth = np.array([label_list.index(e.label) for e in examples])
    predicted = logits.argmax(axis=1)
    return float((predicted == truth).mean()), macro_f1(truth, predicted, len(label_list))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-set", choices=LABEL_SETS, default="seed")
    parser.add_argument(
        "--data",
        default=None,
        help="any labelled JSONL instead of a named label set (e.g. a public intent set with train/val/test)",
    )
    parser.add_argument("--throughput-examples", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per variant")
    parser.add_argument(
        "--with-references",
        action="store_true",
        help="also time the seed's pad-to-128 batches and mega-batch 8 alone",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="time only the variants whose name matches this regex (and legacy); in the accuracy part, "
        "train only those",
    )
    parser.add_argument("--base-model", default=None, help="default: packaged all-MiniLM-L6-v2")
    parser.add_argument(
        "--plain-lrs", default="1e-4,3e-4,5e-4", help="rates the plain loop is tuned over (on val)"
    )
    parser.add_argument("--plain-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = configure_threads()

    splits, label_list = file_label_set(args.data) if args.data else label_set(args.label_set)
    print(
        f"label set {args.data or args.label_set}: {len(label_list)} labels, split {splits.sizes()}; torch threads {threads}, "
        f"inter-op {torch.get_num_interop_threads()}; recipe v2 bf16 autocast "
        f"{'on (AMX/AVX-512-BF16)' if resolve_bf16('auto') else 'off (no native bf16)'}"
    )

    outliers = shipped_ood_pools().train_texts  # what `manga-intent train` exposes by default
    if not args.skip_throughput:
        n = min(args.throughput_examples, len(splits.train))
        variants = [
            ("legacy (CLS+pooler, dense embedding update, mega-batch 50)", LEGACY_RECIPE),
            ("legacy + frozen word embeddings", replace(LEGACY_RECIPE, freeze_word_embeddings=True)),
            ("legacy + fused AdamW", replace(LEGACY_RECIPE, optimizer_impl="fused")),
            (
                "recipe v2 (no defences), word embeddings trained",
                replace(BARE_V2, freeze_word_embeddings=False),
            ),
            ("recipe v2 (no defences), default AdamW kernel", replace(BARE_V2, optimizer_impl="default")),
            ("recipe v2 without its defences (no outlier exposure, no adversarial rows)", BARE_V2),
            ("recipe v2 + adversarial rows only", replace(BARE_V2, adversarial_weight=1.0)),
            ("recipe v2 + outlier exposure only", replace(BARE_V2, outlier_exposure_weight=0.5)),
            ("recipe v2 as shipped (outlier exposure + adversarial rows)", TrainConfig()),
            ("recipe v2 as shipped, torch's dropout masks", replace(TrainConfig(), fast_dropout=False)),
            ("recipe v2 as shipped with an EMA of the weights", replace(TrainConfig(), ema_decay=0.98)),
            (
                "recipe v2, 16 attacked + 16 out-of-scope rows a step",
                replace(EVERY_ROW, adversarial_batch_size=16, outlier_batch_size=16),
            ),
            (
                "recipe v2, 16 attacked + 8 out-of-scope rows a step",
                replace(EVERY_ROW, adversarial_batch_size=16, outlier_batch_size=8),
            ),
            (
                "recipe v2, 24 attacked + 8 out-of-scope rows a step",
                replace(EVERY_ROW, adversarial_batch_size=24, outlier_batch_size=8),
            ),
            (
                "recipe v2 as shipped, selective backprop of the defences' rows (the hardest 1/4)",
                replace(TrainConfig(), auxiliary_backprop_share=0.25),
            ),
            (
                "recipe v2 as shipped, selective backprop of the defences' rows (the hardest 1/8)",
                replace(TrainConfig(), auxiliary_backprop_share=0.125),
            ),
            ("recipe v2 (no defences), torch's dropout masks", replace(BARE_V2, fast_dropout=False)),
        ]
        if resolve_bf16("auto"):  # recipe v2 autocasts to bf16 here: also time it in fp32
            variants.append(
                ("recipe v2 (no defences) in fp32 (bf16 autocast off)", replace(BARE_V2, bf16="off"))
            )
        if args.only:
            keep = re.compile(args.only)
            variants = [variants[0], *(v for v in variants[1:] if keep.search(v[0]))]  # legacy: the unit
        if args.with_references:
            variants += [
                ("legacy + mega-batch 8", replace(LEGACY_RECIPE, mega_batch_factor=8)),
                ("seed recipe, pad to 128", replace(LEGACY_RECIPE, batching="pad_to_max")),
            ]
        # interleaved rounds: every variant runs once per round, so load on a shared machine hits all alike
        totals = {name: [0, 0.0] for name, _ in variants}
        per_round = max(32, n // args.rounds)
        for round_index in range(args.rounds):
            rows = splits.train[round_index * per_round :] + splits.train[: round_index * per_round]
            for name, config in variants:
                seen, seconds = timed_pass(
                    rows, splits.val, label_list, config, args.base_model, per_round, outliers
                )
                totals[name][0] += seen
                totals[name][1] += seconds
        measured = {name: seen / seconds for name, (seen, seconds) in totals.items()}
        _, _, plain_eps = plain_hf_loop(
            splits.train,
            label_list,
            base_model=args.base_model,
            lr=1e-4,
            epochs=1,
            batch_size=32,
            seed=args.seed,
            max_examples=n,
        )
        measured["plain transformers loop"] = plain_eps
        legacy = measured[variants[0][0]]
        print(
            f"\nthroughput over {n} training examples each, {args.rounds} interleaved rounds "
            "(examples/s, ratio to legacy):"
        )
        for name, eps in measured.items():
            print(f"  {name:<58} {eps:8.1f}   {eps / legacy:5.2f}x")

    if args.skip_accuracy:
        return
    print(
        f"\nfull training on {len(splits.train)} rows; choices on val (n={len(splits.val)}), "
        f"test n={len(splits.test)} reported:"
    )
    full = [("legacy", LEGACY_RECIPE), ("recipe v2", TrainConfig())]
    if resolve_bf16("auto"):  # bf16 must not cost accuracy: the same recipe in fp32 alongside
        full.append(("v2 fp32", replace(TrainConfig(), bf16="off")))
    if args.only:  # e.g. --only "recipe v2$": re-check one recipe's accuracy without retraining the others
        full = [(name, config) for name, config in full if re.search(args.only, name)]
    for name, config in full:
        started = time.perf_counter()
        result = train_classifier(
            splits.train,
            splits.val,
            label_list,
            config,
            base_model=args.base_model,
            progress=False,
            outlier_texts=outliers if config.outlier_exposure_weight > 0 else (),
        )
        wall = time.perf_counter() - started
        val_acc, val_f1 = scores(result.model, result.tokenizer, splits.val, label_list)
        test_acc, test_f1 = scores(result.model, result.tokenizer, splits.test, label_list)
        print(
            f"  {name:<10} val acc {val_acc:.4f} macro-F1 {val_f1:.4f} | test acc {test_acc:.4f} macro-F1 "
            f"{test_f1:.4f} | {result.steps} steps, {result.examples_per_second:.1f} ex/s, wall {wall:.0f}s"
        )
    if args.skip_plain:
        return
    best = None
    for lr in [float(x) for x in args.plain_lrs.split(",")]:
        model, tokenizer, eps = plain_hf_loop(
            splits.train,
            label_list,
            base_model=args.base_model,
            lr=lr,
            epochs=args.plain_epochs,
            batch_size=32,
            seed=args.seed,
        )
        val_acc, val_f1 = scores(model, tokenizer, splits.val, label_list)
        print(f"  plain loop lr {lr:g}: val acc {val_acc:.4f} macro-F1 {val_f1:.4f}")
        if best is None or val_acc > best[0]:
            best = (val_acc, lr, scores(model, tokenizer, splits.test, label_list))
        del model
    val_acc, lr, (test_acc, test_f1) = best
    print(
        f"  plain loop, rate tuned on val (lr {lr:g}, {args.plain_epochs} epochs): val acc {val_acc:.4f} | "
        f"test acc {test_acc:.4f} macro-F1 {test_f1:.4f}"
    )


if __name__ == "__main__":
    main()
