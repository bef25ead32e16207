"""Pool-based active learning, simulated: margin vs least confidence vs entropy vs random.

  python bench/active_learning.py [--rounds 14] [--step 50] [--repeats 3]

The pool is the shipped seed corpus plus generated messages; their labels are hidden and revealed
only for the messages a strategy picks. Each round the learner is retrained on the labels bought
so far and scored on the golden set. Selection is the production code (`select_batch`: dedupe,
confusion-group balancing). The learner is a logistic-regression head on frozen packaged-MiniLM
sentence embeddings, retrained from scratch each round: cheap enough to run dozens of rounds on a
2-core CPU, and it ranks query strategies the same way a fine-tuned head would — it is not the
production fine-tuning recipe, and its absolute accuracies are lower than the fine-tuned model's.
"""

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.active_learning import select_batch  # noqa: E402
from manga_intent.shipped_data import GOLDEN, SEED_CORPUS, read_rows  # noqa: E402
from manga_intent.synthetic import generate_synthetic  # noqa: E402
from manga_intent.taxonomy import INTENTS  # noqa: E402


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


def run_strategy(strategy, pool_x, pool_y, pool_text, test_x, test_y, *, start, step, rounds, seed):
    rng = random.Random(seed)
    labelled = set(rng.sample(range(len(pool_y)), start))
    curve = []
    for _ in range(rounds + 1):
        idx = sorted(labelled)
        model = fit(pool_x[idx], pool_y[idx])
        curve.append((len(labelled), float((model.predict(test_x) == test_y).mean())))
        unlabelled = [i for i in range(len(pool_y)) if i not in labelled]
        if strategy == "random":
            picked = rng.sample(unlabelled, step)
        else:
            probs = model.predict_proba(pool_x[unlabelled])
            classes = [INTENTS[c] for c in model.classes_]
            candidates = [
                {"text": pool_text[i], "probs": dict(zip(classes, row)), "index": i}
                for i, row in zip(unlabelled, probs)
            ]
            picked = [c["index"] for c in select_batch(candidates, step, strategy=strategy)]
        labelled.update(picked)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=3000, help="generated messages added to the pool")
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    pool = [(r["text"], r["label"]) for r in read_rows(SEED_CORPUS.path)]
    pool += [(r["text"], r["label"]) for r in generate_synthetic(args.synthetic, seed=99)]
    golden = [(r["text"], r["label"]) for r in read_rows(GOLDEN.path)]
    pool_text = [t for t, _ in pool]
    pool_x, test_x = embed(pool_text), embed([t for t, _ in golden])
    pool_y = np.array([INTENTS.index(label) for _, label in pool])
    test_y = np.array([INTENTS.index(label) for _, label in golden])
    full = float((fit(pool_x, pool_y).predict(test_x) == test_y).mean())
    target = 0.95 * full
    print(
        f"pool {len(pool)} messages (seed corpus + {args.synthetic} generated), golden test {len(golden)}; "
        f"full-pool accuracy {full:.4f}, target (95%) {target:.4f}"
    )

    curves = {}
    for strategy in ("margin", "least_confidence", "entropy", "random"):
        runs = [
            run_strategy(
                strategy,
                pool_x,
                pool_y,
                pool_text,
                test_x,
                test_y,
                start=args.start,
                step=args.step,
                rounds=args.rounds,
                seed=repeat,
            )
            for repeat in range(args.repeats)
        ]
        curves[strategy] = [
            (runs[0][i][0], float(np.mean([r[i][1] for r in runs]))) for i in range(len(runs[0]))
        ]

    labels_used = [n for n, _ in curves["random"]]
    print(f"\ngolden accuracy by labels used (mean of {args.repeats} repeats)")
    print(f"{'labels':>7s} " + " ".join(f"{s:>17s}" for s in curves))
    for i, n in enumerate(labels_used):
        print(f"{n:7d} " + " ".join(f"{curves[s][i][1]:17.4f}" for s in curves))
    print(f"\nlabels needed to reach 95% of full-pool accuracy ({target:.4f}):")
    for strategy, curve in curves.items():
        reached = next((n for n, acc in curve if acc >= target), None)
        print(f"  {strategy:17s} {reached if reached is not None else f'not within {labels_used[-1]}'}")


if __name__ == "__main__":
    main()
