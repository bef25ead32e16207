"""Training throughput and accuracy: our trainer vs the seed's pad-to-128 batches vs a plain HF loop.

All three run in this one process, on the same generated data, split and base model, so the
ratios are comparable even on a noisy machine (absolute numbers are not).

  python bench/train_throughput.py [--n 10000] [--epochs 3] [--throughput-examples 1600]

1. Throughput: each trainer makes one timed pass over the same `--throughput-examples` training
   rows: ours (length-grouped dynamic padding), (a) the seed's recipe
   with every message padded to 128 tokens, (b) a plain transformers loop (DataCollatorWithPadding,
   shuffled batches, uniform-LR AdamW, linear schedule, cross-entropy).
2. Accuracy: ours and (b) train fully for `--epochs` on the whole training split; both are scored
   on the same test split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.data import infer_label_list, load_jsonl, make_splits  # noqa: E402
from manga_intent.inference import predict_logits  # noqa: E402
from manga_intent.model_io import load_base_for_training  # noqa: E402
from manga_intent.synthetic import generate_synthetic  # noqa: E402
from manga_intent.training import TrainConfig, configure_threads, train_classifier  # noqa: E402


def write_dataset(path: Path, n: int, seed: int) -> None:
    rows = generate_synthetic(n, seed=seed)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"text": row["text"], "label": row["label"]}, ensure_ascii=False) + "\n")


def plain_hf_loop(
    train, label_list, *, base_model, lr, epochs, batch_size, seed, max_examples=None, progress=False
):
    """The textbook transformers fine-tuning loop; timed over its epochs (tokenisation excluded, as for ours)."""
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    tokenizer, model = load_base_for_training(base_model, label_list)
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


def timed_pass(train, label_list, config: TrainConfig, base_model: str | None, n: int) -> float:
    """Examples/second of our trainer over one epoch of the first n training rows."""
    result = train_classifier(
        train[:n], train[:64], label_list, config, base_model=base_model, progress=False
    )
    return result.examples_per_second


def accuracy(model, tokenizer, examples, label_list) -> float:
    logits = predict_logits(model, tokenizer, [e.text for e in examples])
    truth = np.array([label_list.index(e.label) for e in examples])
    return float((logits.argmax(axis=1) == truth).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--throughput-examples", type=int, default=1600)
    parser.add_argument("--base-model", default=None, help="default: packaged all-MiniLM-L6-v2")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    configure_threads()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        write_dataset(path, args.n, args.seed)
        examples = load_jsonl(path).examples
    label_list = infer_label_list(examples)
    splits = make_splits(examples, seed=42)
    print(
        f"data: {len(examples)} generated rows, {len(label_list)} labels, split {splits.sizes()}; "
        f"torch threads {torch.get_num_threads()}"
    )

    ours = TrainConfig(epochs=1, patience=1)
    tokenizer, probe = load_base_for_training(args.base_model, label_list)
    from manga_intent.training import default_learning_rate

    lr = default_learning_rate(probe.config)
    del probe
    n = min(args.throughput_examples, len(splits.train))
    eps_ours = timed_pass(splits.train, label_list, ours, args.base_model, n)
    eps_pad = timed_pass(
        splits.train, label_list, TrainConfig(epochs=1, patience=1, batching="pad_to_max"), args.base_model, n
    )
    _, _, eps_plain = plain_hf_loop(
        splits.train,
        label_list,
        base_model=args.base_model,
        lr=lr,
        epochs=1,
        batch_size=32,
        seed=args.seed,
        max_examples=n,
    )
    print(f"\nthroughput over {n} training examples (examples/s):")
    print(f"  ours (length-grouped dynamic padding) {eps_ours:8.1f}")
    print(f"  (a) seed recipe, pad to 128           {eps_pad:8.1f}   ours/pad128 = {eps_ours / eps_pad:.2f}x")
    print(
        f"  (b) plain transformers loop            {eps_plain:8.1f}   ours/plain  = {eps_ours / eps_plain:.2f}x"
    )

    if args.skip_accuracy:
        return
    started = time.perf_counter()
    full = train_classifier(
        splits.train,
        splits.val,
        label_list,
        TrainConfig(epochs=args.epochs),
        base_model=args.base_model,
        progress=False,
    )
    ours_seconds = time.perf_counter() - started
    acc_ours = accuracy(full.model, full.tokenizer, splits.test, label_list)
    started = time.perf_counter()
    plain_model, plain_tok, _ = plain_hf_loop(
        splits.train,
        label_list,
        base_model=args.base_model,
        lr=lr,
        epochs=args.epochs,
        batch_size=32,
        seed=args.seed,
    )
    plain_seconds = time.perf_counter() - started
    acc_plain = accuracy(plain_model, plain_tok, splits.test, label_list)
    print(f"\nfull training, {args.epochs} epochs on {len(splits.train)} rows, test n={len(splits.test)}:")
    print(
        f"  ours  accuracy {acc_ours:.4f}  wall {ours_seconds:6.1f}s  ({full.examples_per_second:.1f} ex/s, "
        f"best epoch {full.best_epoch})"
    )
    print(f"  plain accuracy {acc_plain:.4f}  wall {plain_seconds:6.1f}s")
    print(f"  accuracy difference ours - plain = {acc_ours - acc_plain:+.4f}")


if __name__ == "__main__":
    main()
