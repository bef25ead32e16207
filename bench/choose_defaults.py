"""Choose the default learning rate and epochs on the validation split — never on the golden set.

Each grid point fine-tunes the packaged MiniLM on the seed corpus's training split (80%, split seed 42) with
the recipe's defaults otherwise, and is scored on the validation split (10%: the number that chooses) and on
the test split (10%: held out, reported, not used to choose). The golden set is not read: it belongs to the gate.

  python bench/choose_defaults.py [--grid 5e-5:3,1e-4:3,2e-4:3,1e-4:6,3e-4:3,3e-4:5,5e-4:5] [--out FILE]

Run it under the CPU lock, a few grid points at a time (`--grid` a subset, `--out` appends rows to a JSONL);
`--report FILE` prints the table of everything measured so far and the validation-chosen point.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.data import SPLIT_SEED, load_jsonl, make_splits  # noqa: E402
from manga_intent.inference import predict_logits  # noqa: E402
from manga_intent.shipped_data import SEED_CORPUS  # noqa: E402
from manga_intent.taxonomy import INTENTS  # noqa: E402
from manga_intent.training import TrainConfig, train_classifier  # noqa: E402

DEFAULT_GRID = "5e-5:3,1e-4:3,2e-4:3,1e-4:6,3e-4:3,3e-4:5,5e-4:5"


def accuracy(model, tokenizer, examples) -> float:
    predicted = predict_logits(model, tokenizer, [e.text for e in examples]).argmax(axis=1)
    return float(np.mean(predicted == np.array([INTENTS.index(e.label) for e in examples])))


def measure(lr: float, epochs: int, splits) -> dict:
    started = time.perf_counter()
    result = train_classifier(
        splits.train, splits.val, INTENTS, TrainConfig(epochs=epochs, lr=lr), base_model=None, progress=False
    )
    return {
        "lr": lr,
        "epochs": epochs,
        "val_accuracy": accuracy(result.model, result.tokenizer, splits.val),
        "test_accuracy": accuracy(result.model, result.tokenizer, splits.test),
        "best_epoch": result.best_epoch,
        "minutes": (time.perf_counter() - started) / 60,
    }


def report(rows: list[dict]) -> str:
    lines = [
        "| base lr | epochs | validation acc (chooses) | test acc (held out) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['lr']:.0e} | {r['epochs']} | {r['val_accuracy']:.3f} | {r['test_accuracy']:.3f} |"
        for r in rows
    ]
    best = max(rows, key=lambda r: (r["val_accuracy"], -r["epochs"]))
    lines.append(f"\nchosen on validation: lr {best['lr']:.0e}, {best['epochs']} epochs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", default=DEFAULT_GRID, help="lr:epochs,lr:epochs,...")
    parser.add_argument("--out", default=None, help="append each measured row to this JSONL")
    parser.add_argument("--report", default=None, help="print the table of a JSONL written by --out and exit")
    args = parser.parse_args(argv)
    if args.report:
        rows = [json.loads(line) for line in Path(args.report).read_text().splitlines() if line.strip()]
        print(report(rows))
        return 0
    splits = make_splits(load_jsonl(SEED_CORPUS.path, allowed_labels=INTENTS).examples, seed=SPLIT_SEED)
    print(f"seed corpus: {len(splits.train)} train / {len(splits.val)} validation / {len(splits.test)} test")
    rows = []
    for point in args.grid.split(","):
        lr, epochs = point.split(":")
        row = measure(float(lr), int(epochs), splits)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
