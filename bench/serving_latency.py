"""Serving latency: our compiled CPU artifact vs `transformers.pipeline("text-classification")`.

Same model, same golden-set messages, same process, measured alternately so machine noise hits both:

  python bench/serving_latency.py [--model DIR] [--rounds 3]

Ours does tokenize → ONNX Runtime logits → temperature-calibrated probabilities → energy OOD score;
the pipeline does tokenize → eager PyTorch logits → softmax. Without --model a classifier is built
from the packaged MiniLM with an untrained head (latency does not depend on the weights' values).
Prints single-message P50/P95/P99, batch throughput (batches of 32) and the ratios.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.compiled import CompiledClassifier, compile_classifier  # noqa: E402
from manga_intent.model_io import load_base_for_training, load_trained, save_model  # noqa: E402
from manga_intent.shipped_data import GOLDEN, read_rows  # noqa: E402
from manga_intent.taxonomy import INTENTS  # noqa: E402
from manga_intent.training import configure_threads  # noqa: E402


def percentiles(samples_ms: list[float]) -> dict:
    values = np.array(samples_ms)
    return {p: float(np.percentile(values, p)) for p in (50, 95, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a directory written by `manga-intent train`")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    configure_threads()
    import torch
    from transformers import pipeline

    texts = [row["text"] for row in read_rows(GOLDEN.path)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model, tokenizer, card = load_trained(args.model)
            model_dir, labels = args.model, card["labels"]
        else:
            tokenizer, model = load_base_for_training(None, INTENTS)
            model_dir, labels = (
                save_model(model, tokenizer, Path(tmp) / "model", {"labels": list(INTENTS)}),
                INTENTS,
            )
        model.eval()
        compile_classifier(
            model,
            tokenizer,
            Path(tmp) / "compiled",
            labels=labels,
            temperature=1.0,
            ood_threshold=0.0,
            backend="onnx",
        )
        ours = CompiledClassifier(Path(tmp) / "compiled")
        baseline = pipeline(
            "text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1, top_k=None
        )
        for text in texts[:20]:  # warm up both
            ours.classify([text])
            baseline(text)

        single = {"ours": [], "pipeline": []}
        batch_seconds = {"ours": 0.0, "pipeline": 0.0}
        with torch.inference_mode():
            for _ in range(args.rounds):
                for text in texts:
                    start = time.perf_counter()
                    ours.classify([text])
                    single["ours"].append((time.perf_counter() - start) * 1000)
                    start = time.perf_counter()
                    baseline(text)
                    single["pipeline"].append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                for i in range(0, len(texts), args.batch_size):
                    ours.classify(texts[i : i + args.batch_size])
                batch_seconds["ours"] += time.perf_counter() - start
                start = time.perf_counter()
                baseline(texts, batch_size=args.batch_size)
                batch_seconds["pipeline"] += time.perf_counter() - start

    n = len(texts) * args.rounds
    stats = {name: percentiles(samples) for name, samples in single.items()}
    throughput = {name: n / seconds for name, seconds in batch_seconds.items()}
    print(f"{len(texts)} golden messages x {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    print(f"{'':10s} {'P50 ms':>8s} {'P95 ms':>8s} {'P99 ms':>8s} {'batch msg/s':>12s}")
    for name in ("ours", "pipeline"):
        print(
            f"{name:10s} {stats[name][50]:8.2f} {stats[name][95]:8.2f} {stats[name][99]:8.2f} {throughput[name]:12.1f}"
        )
    print(
        f"speed-up (pipeline / ours): P50 {stats['pipeline'][50] / stats['ours'][50]:.2f}x, "
        f"P95 {stats['pipeline'][95] / stats['ours'][95]:.2f}x, P99 {stats['pipeline'][99] / stats['ours'][99]:.2f}x, "
        f"batch throughput {throughput['ours'] / throughput['pipeline']:.2f}x"
    )


if __name__ == "__main__":
    main()
