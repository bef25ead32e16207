"""Pool-based active learning, simulated, with two learners: labels needed to reach a target accuracy for
margin, least confidence, entropy, random and BADGE (diversity-aware: k-means++ over gradient embeddings).

  python bench/active_learning.py frozen   [--rounds 14 --step 50 --repeats 3]
  python bench/active_learning.py finetune --strategy margin   [--rounds 5 --step 50]   (one curve per call)
  python bench/active_learning.py finetune --strategy full     (the full-pool model: the target)
  python bench/active_learning.py report

Data: the pool is 80% of the shipped seed corpus (stratified) plus generated messages (generator seed 99);
the HELD-OUT split is the other 20% of the seed corpus plus messages from another generator seed (7), with
near-duplicates of it removed from the pool. Labels are hidden and revealed only for what a strategy picks;
every round is scored on the held-out split. The golden set is never read (it belongs to the gate).

Learners:
- `frozen`: a logistic-regression head on frozen packaged-MiniLM sentence embeddings, retrained from scratch
  each round (cheap: dozens of rounds); BADGE's features are the embeddings.
- `finetune`: the production recipe (`train_classifier` with recipe v2's defaults on the packaged MiniLM),
  fine-tuned from the base model each round on the labels bought so far, a seventh of them held back as its
  validation split (early stopping and the temperature the selection reads); BADGE's features are the
  fine-tuned model's pooled sentence vectors. Each call runs one strategy's curve and stores it, so the sweep
  runs in lock-sized pieces (`flock /tmp/manga-cpu.lock ...`); `report` prints the table from what is stored.

Target: 95% of the same learner's held-out accuracy when trained on the whole pool.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.active_learning import badge_batch, select_batch  # noqa: E402
from manga_intent.data import Example, normalized_key, stratified_split  # noqa: E402
from manga_intent.shipped_data import SEED_CORPUS, read_rows  # noqa: E402
from manga_intent.synthetic import generate_synthetic  # noqa: E402
from manga_intent.taxonomy import INTENTS  # noqa: E402

STRATEGIES = ("margin", "least_confidence", "entropy", "random", "badge")
RESULTS = Path(__file__).resolve().parent / "results" / "active_learning_finetune.json"


def splits(synthetic: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pool, held_out) as (text, label) pairs; no held-out message (normalised) is in the pool."""
    corpus = [Example(r["text"], r["label"]) for r in read_rows(SEED_CORPUS.path)]
    parts = stratified_split(corpus, seed=0, val_fraction=0.1, test_fraction=0.2)  # pool: train + val
    held = [(e.text, e.label) for e in parts.test]
    held += [(r["text"], r["label"]) for r in generate_synthetic(600, seed=7)]
    held_keys = {normalized_key(t) for t, _ in held}
    pool = [(e.text, e.label) for e in [*parts.train, *parts.val]]
    pool += [(r["text"], r["label"]) for r in generate_synthetic(synthetic, seed=99)]
    pool = [(t, label) for t, label in pool if normalized_key(t) not in held_keys]
    return pool, held


def pick(strategy, unlabelled, probs, features, pool_text, step, rng, seed):
    """The next batch's pool indices by the production selection code."""
    if strategy == "random":
        return rng.sample(unlabelled, step)
    candidates = [{"text": pool_text[i], "index": i} for i in unlabelled]
    if strategy == "badge":
        return [c["index"] for c in badge_batch(candidates, probs, features, step, seed=seed)]
    for candidate, row in zip(candidates, probs):
        candidate["probs"] = dict(zip(INTENTS, row))
    return [c["index"] for c in select_batch(candidates, step, strategy=strategy)]


# --- the frozen-embedding learner ----------------------------------------------------------------------


def embed(texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised packaged MiniLM embeddings (the model's sentence-embedding setup)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from manga_intent.model_io import packaged_minilm_path

    path = packaged_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            batch = tokenizer(
                texts[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            vectors = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(vectors, dim=1).numpy())
    return np.concatenate(out)


def fit(x, y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, C=10.0).fit(x, y)


def full_probs(model, x) -> np.ndarray:
    """Probabilities over every intent (classes never labelled yet get 0)."""
    out = np.zeros((len(x), len(INTENTS)))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def frozen_curve(strategy, pool_x, pool_y, pool_text, held_x, held_y, *, start, step, rounds, seed):
    rng = random.Random(seed)
    labelled = set(rng.sample(range(len(pool_y)), start))
    curve = []
    for _ in range(rounds + 1):
        idx = sorted(labelled)
        model = fit(pool_x[idx], pool_y[idx])
        curve.append((len(labelled), float((model.predict(held_x) == held_y).mean())))
        unlabelled = [i for i in range(len(pool_y)) if i not in labelled]
        probs = full_probs(model, pool_x[unlabelled])
        labelled.update(pick(strategy, unlabelled, probs, pool_x[unlabelled], pool_text, step, rng, seed))
    return curve


def run_frozen(args) -> None:
    pool, held = splits(args.synthetic)
    pool_text = [t for t, _ in pool]
    pool_x, held_x = embed(pool_text), embed([t for t, _ in held])
    pool_y = np.array([INTENTS.index(label) for _, label in pool])
    held_y = np.array([INTENTS.index(label) for _, label in held])
    full = float((fit(pool_x, pool_y).predict(held_x) == held_y).mean())
    print(f"pool {len(pool)}, held-out {len(held)}; full-pool held-out accuracy {full:.4f}")
    curves = {}
    for strategy in STRATEGIES:
        runs = [
            frozen_curve(
                strategy,
                pool_x,
                pool_y,
                pool_text,
                held_x,
                held_y,
                start=args.start,
                step=args.step,
                rounds=args.rounds,
                seed=repeat,
            )
            for repeat in range(args.repeats)
        ]
        curves[strategy] = [
            [runs[0][i][0], float(np.mean([r[i][1] for r in runs]))] for i in range(len(runs[0]))
        ]
    record = {"learner": "frozen", "full_accuracy": full, "repeats": args.repeats, "curves": curves}
    print_table(record)
    out = RESULTS.with_name("active_learning_frozen.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")


# --- the production fine-tuning learner -----------------------------------------------------------------


def split_labelled(indices, pool):
    """A seventh of the bought labels (by a hash of the text: stable across rounds) is the validation split."""
    train, val = [], []
    for i in indices:
        text, label = pool[i]
        (val if zlib.crc32(text.encode()) % 7 == 0 else train).append(Example(text, label))
    if not val:  # very small sets: one row still validates
        val.append(train.pop())
    return train, val


def finetune_round(indices, pool, held, unlabelled_text, seed):
    """Fine-tune the production recipe on the labels at `indices`; held-out accuracy, pool probs and features."""
    import torch

    from manga_intent.calibration import calibrate_on_validation
    from manga_intent.inference import predict_logits
    from manga_intent.training import TrainConfig, train_classifier

    train, val = split_labelled(indices, pool)
    config = TrainConfig(init_seed=seed, sampler_seed=seed)
    result = train_classifier(train, val, INTENTS, config, progress=False)
    model, tokenizer = result.model, result.tokenizer
    temperature = calibrate_on_validation(
        model, tokenizer, val, INTENTS, max_length=config.max_length
    ).temperature
    held_logits = predict_logits(model, tokenizer, [t for t, _ in held], max_length=config.max_length)
    accuracy = float((held_logits.argmax(1) == np.array([INTENTS.index(label) for _, label in held])).mean())
    if not unlabelled_text:
        return accuracy, None, None
    from manga_intent.batching import encode_texts, iter_eval_batches

    encoded = encode_texts(tokenizer, unlabelled_text, config.max_length)
    logits = np.zeros((len(unlabelled_text), len(INTENTS)), dtype=np.float32)
    features = np.zeros((len(unlabelled_text), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for rows, batch in iter_eval_batches(encoded, 64, tokenizer.pad_token_id):
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            logits[rows], features[rows] = out.logits.float().numpy(), out.features.float().numpy()
    z = logits / temperature
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    return accuracy, probs / probs.sum(axis=1, keepdims=True), features


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"learner": "finetune", "curves": {}}


def run_finetune(args) -> None:
    from manga_intent.cpu import configure_threads

    configure_threads(None)
    pool, held = splits(args.synthetic)
    pool_text = [t for t, _ in pool]
    results = load_results()
    settings = {"synthetic": args.synthetic, "start": args.start, "step": args.step, "held_out": len(held)}
    if results.get("settings", settings) != settings:
        raise SystemExit(f"{RESULTS} was made with {results['settings']}; move it away to change settings")
    results["settings"] = settings
    started = time.perf_counter()
    if args.strategy == "full":
        accuracy, _, _ = finetune_round(range(len(pool)), pool, held, [], seed=0)
        results["full_accuracy"] = accuracy
        print(
            f"full pool ({len(pool)} labels): held-out accuracy {accuracy:.4f} ({time.perf_counter() - started:.0f}s)"
        )
    else:
        labelled = sorted(random.Random(args.repeat).sample(range(len(pool)), args.start))
        key = f"{args.strategy}:{args.repeat}"
        curve = results["curves"].get(key, [])
        if curve:  # resume where the last chunk stopped
            labelled = curve[-1]["next"]
        while len(curve) <= args.rounds:
            rng = random.Random(f"{args.repeat}:{len(curve)}")
            unlabelled = [i for i in range(len(pool)) if i not in set(labelled)]
            accuracy, probs, features = finetune_round(
                labelled, pool, held, [pool_text[i] for i in unlabelled], seed=args.repeat
            )
            picked = pick(args.strategy, unlabelled, probs, features, pool_text, args.step, rng, args.repeat)
            following = sorted(set(labelled) | set(picked))
            curve.append(
                {"labels": len(labelled), "accuracy": accuracy, "labelled": labelled, "next": following}
            )
            print(
                f"{args.strategy} round {len(curve) - 1}: {len(labelled)} labels -> {accuracy:.4f} "
                f"({time.perf_counter() - started:.0f}s)",
                flush=True,
            )
            labelled = following
            results["curves"][key] = curve
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results) + "\n")  # after every round: a killed chunk resumes here
            if time.perf_counter() - started > args.budget_seconds:
                print(f"stopping after {args.budget_seconds}s (lock etiquette); run again to continue")
                break
    RESULTS.write_text(json.dumps(results) + "\n")


# --- the table -------------------------------------------------------------------------------------------


def print_table(record: dict) -> None:
    curves, full = record["curves"], record.get("full_accuracy")
    if not curves:
        print("no curves stored yet")
        return
    target = 0.95 * full if full else None
    labels = max((c for c in curves.values()), key=len)
    repeats = f" (mean of {record['repeats']} repeats)" if record.get("repeats") else ""
    print(f"\n{record['learner']} learner: held-out accuracy by labels bought{repeats}")
    names = list(curves)
    print(f"{'labels':>7s} " + " ".join(f"{s:>17s}" for s in names))
    for i, (n, _) in enumerate(labels):
        cells = [f"{curves[s][i][1]:17.4f}" if i < len(curves[s]) else f"{'':17s}" for s in names]
        print(f"{n:7d} " + " ".join(cells))
    if target is None:
        print("no full-pool accuracy stored yet: no target")
        return
    print(f"\nlabels to reach 95% of full-pool accuracy ({full:.4f} -> target {target:.4f}):")
    for strategy, curve in curves.items():
        reached = next((n for n, acc in curve if acc >= target), None)
        print(f"  {strategy:17s} {reached if reached is not None else f'not within {curve[-1][0]}'}")


def report(_args) -> None:
    frozen = RESULTS.with_name("active_learning_frozen.json")
    if frozen.is_file():
        print_table(json.loads(frozen.read_text()))
    results = load_results()
    by_strategy: dict[str, list] = {}
    for key, curve in results["curves"].items():
        by_strategy.setdefault(key.split(":")[0], []).append(curve)
    curves = {}
    for strategy in STRATEGIES:
        runs = by_strategy.get(strategy)
        if runs:
            length = min(len(r) for r in runs)
            curves[strategy] = [
                [runs[0][i]["labels"], float(np.mean([r[i]["accuracy"] for r in runs]))]
                for i in range(length)
            ]
    print_table(
        {
            "learner": "finetune (production recipe)",
            "full_accuracy": results.get("full_accuracy"),
            "repeats": min((len(r) for r in by_strategy.values()), default=0),
            "curves": curves,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="learner", required=True)
    for name, defaults in (("frozen", (50, 50, 14)), ("finetune", (50, 50, 5))):
        p = sub.add_parser(name)
        p.add_argument("--synthetic", type=int, default=3000, help="generated messages added to the pool")
        p.add_argument("--start", type=int, default=defaults[0])
        p.add_argument("--step", type=int, default=defaults[1])
        p.add_argument("--rounds", type=int, default=defaults[2])
        if name == "frozen":
            p.add_argument("--repeats", type=int, default=3)
        else:
            p.add_argument("--strategy", choices=[*STRATEGIES, "full"], required=True)
            p.add_argument("--repeat", type=int, default=0, help="seed of the initial random labels")
            p.add_argument(
                "--budget-seconds", type=float, default=800, help="stop after the round that passes it"
            )
    sub.add_parser("report")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    {"frozen": run_frozen, "finetune": run_finetune, "report": report}[args.learner](args)


if __name__ == "__main__":
    main()
