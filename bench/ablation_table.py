"""Markdown table of the validation-only ablations (bench/results/ablations.jsonl), one row per variant.

python bench/ablation_table.py [bench/results/ablations.jsonl]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/ablations.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        grouped[(r["label_set"], r["name"])].append(r)
    print("| label set | variant | seeds | val acc | val macro-F1 | best step / steps | train ex/s |")
    print("|---|---|---|---|---|---|---|")
    for (label_set, name), runs in grouped.items():
        acc = np.mean([r["val_accuracy"] for r in runs])
        f1 = np.mean([r["val_macro_f1"] for r in runs])
        steps = "; ".join(f"{r['best_step']}/{r['steps']}" for r in runs)
        eps = np.mean([r["examples_per_second"] for r in runs])
        print(
            f"| {label_set} ({runs[0]['n_labels']} labels) | {name} | {len(runs)} | {acc:.4f} | {f1:.4f} | {steps} | "
            f"{eps:.0f} |"
        )


if __name__ == "__main__":
    main()
